// A reference admission webhook on Go's standard library, for bench/wrk.py to compare the
// Python server with: it decodes only the fields it declares into typed structs (as a Go
// webhook does), makes the legacy and eval repairs with string operations, and answers with
// a JSON patch over HTTPS. It is a yardstick, not a second implementation: it trusts its
// input and parses no shell.
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strings"
)

type container struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

type pod struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Containers []container `json:"containers"`
	} `json:"spec"`
}

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    struct {
		UID       string `json:"uid"`
		Namespace string `json:"namespace"`
		Operation string `json:"operation"`
		Kind      struct {
			Kind string `json:"kind"`
		} `json:"kind"`
		Object pod `json:"object"`
	} `json:"request"`
}

type op struct {
	Op    string      `json:"op"`
	Path  string      `json:"path"`
	Value interface{} `json:"value,omitempty"`
}

type response struct {
	UID       string   `json:"uid"`
	Allowed   bool     `json:"allowed"`
	PatchType string   `json:"patchType,omitempty"`
	Patch     string   `json:"patch,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

type answer struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Response   response `json:"response"`
}

var targets = map[string]bool{"kserve-container": true, "worker-container": true, "main": true}

func repair(p *pod) []op {
	_, isvc := p.Metadata.Labels["serving.kserve.io/inferenceservice"]
	llm := p.Metadata.Labels["app.kubernetes.io/part-of"] == "llminferenceservice"
	if !isvc && !llm {
		return nil
	}
	var ops []op
	for i, c := range p.Spec.Containers {
		if !targets[c.Name] || len(c.Command) < 2 || c.Command[1] != "-c" {
			continue
		}
		path := "/spec/containers/" + itoa(i)
		switch {
		case len(c.Command) == 2 && len(c.Args) > 0:
			script := strings.TrimRight(c.Args[0], "\n") + " \"$@\"\n"
			ops = append(ops, op{"replace", path + "/command", []string{c.Command[0], "-c", script, c.Name}})
			if len(c.Args) > 1 {
				ops = append(ops, op{"replace", path + "/args", c.Args[1:]})
			} else {
				ops = append(ops, op{Op: "remove", Path: path + "/args"})
			}
		case len(c.Command) == 4 && strings.Contains(c.Command[2], "$@\""):
			script := strings.Replace(c.Command[2], "$@\"", "\\\"\\$@\\\"\"", 1)
			ops = append(ops, op{"replace", path + "/command", []string{c.Command[0], "-c", script, c.Command[3]}})
		}
	}
	if ops != nil {
		ops = append(ops, op{"add", "/metadata/annotations", map[string]string{"multinode-webhook.io/status": "{}"}})
	}
	return ops
}

func itoa(i int) string {
	digits := "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func mutate(w http.ResponseWriter, r *http.Request) {
	var in review
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request.UID == "" {
		http.Error(w, `{"error":"not an AdmissionReview"}`, http.StatusBadRequest)
		return
	}
	out := answer{APIVersion: in.APIVersion, Kind: "AdmissionReview"}
	out.Response = response{UID: in.Request.UID, Allowed: true}
	if in.Request.Operation == "CREATE" && in.Request.Kind.Kind == "Pod" {
		if ops := repair(&in.Request.Object); ops != nil {
			patch, _ := json.Marshal(ops)
			out.Response.PatchType = "JSONPatch"
			out.Response.Patch = base64.StdEncoding.EncodeToString(patch)
			out.Response.Warnings = []string{"rewrote the pod so its args reach the server"}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func main() {
	address := flag.String("address", "127.0.0.1:29443", "address to listen on")
	cert := flag.String("cert", "tls.crt", "certificate file")
	key := flag.String("key", "tls.key", "key file")
	flag.Parse()
	http.HandleFunc("/mutate", mutate)
	log.Fatal(http.ListenAndServeTLS(*address, *cert, *key, nil))
}
