// Admits pods against a SecurityContextConstraints with OpenShift's own SCC admission code (the
// sccmatching package of github.com/openshift/apiserver-library-go), as the API server's
// security.openshift.io/SecurityContextConstraint plugin does for one SCC: the pod is defaulted
// as the API server defaults it, converted to the internal type, and given to
// AssignSecurityContext with a provider built for the namespace's preallocated ranges.
//
// stdin: {"scc": <SecurityContextConstraints>, "namespace": <Namespace>, "pods": [{"name", "pod"}]}
// stdout: [{"name", "errors": [...]}], an empty list of errors for a pod the SCC admits.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	securityv1 "github.com/openshift/api/security/v1"
	"github.com/openshift/apiserver-library-go/pkg/securitycontextconstraints/sccdefaults"
	"github.com/openshift/apiserver-library-go/pkg/securitycontextconstraints/sccmatching"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	api "k8s.io/kubernetes/pkg/apis/core"
	apiv1 "k8s.io/kubernetes/pkg/apis/core/v1"
)

type input struct {
	SCC       securityv1.SecurityContextConstraints `json:"scc"`
	Namespace corev1.Namespace                      `json:"namespace"`
	Pods      []struct {
		Name string     `json:"name"`
		Pod  corev1.Pod `json:"pod"`
	} `json:"pods"`
}

type verdict struct {
	Name   string   `json:"name"`
	Errors []string `json:"errors"`
}

func admit(scc *securityv1.SecurityContextConstraints, ns *corev1.Namespace, pod *corev1.Pod) ([]string, error) {
	provider, err := sccmatching.CreateProviderFromConstraint(ns, scc)
	if err != nil {
		return nil, err
	}
	apiv1.SetObjectDefaults_Pod(pod)
	internal := &api.Pod{}
	if err := apiv1.Convert_v1_Pod_To_core_Pod(pod, internal, nil); err != nil {
		return nil, err
	}
	path := field.NewPath(fmt.Sprintf("provider %s: ", provider.GetSCCName()))
	errors := []string{}
	for _, e := range sccmatching.AssignSecurityContext(provider, internal, path) {
		errors = append(errors, e.Error())
	}
	return errors, nil
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "admit: reading stdin:", err)
		os.Exit(2)
	}
	sccdefaults.SetDefaults_SCC(&in.SCC)
	verdicts := make([]verdict, 0, len(in.Pods))
	for i := range in.Pods {
		errors, err := admit(&in.SCC, &in.Namespace, &in.Pods[i].Pod)
		if err != nil {
			fmt.Fprintln(os.Stderr, "admit:", in.Pods[i].Name+":", err)
			os.Exit(2)
		}
		verdicts = append(verdicts, verdict{Name: in.Pods[i].Name, Errors: errors})
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fmt.Fprintln(os.Stderr, "admit:", err)
		os.Exit(2)
	}
}
