// Runs Go's text/template over each case read from stdin (a JSON list of {template, data}) and
// writes a JSON list of {out, err}: the values the renderer's table test expects. Whole JSON
// numbers are read as Go ints, as the Python side reads them.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type testCase struct {
	Template string `json:"template"`
	Data     any    `json:"data"`
}

type result struct {
	Out string `json:"out"`
	Err bool   `json:"err"`
}

func numbers(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = numbers(item)
		}
	case []any:
		for index, item := range v {
			v[index] = numbers(item)
		}
	case json.Number:
		if whole, err := v.Int64(); err == nil && !strings.ContainsAny(v.String(), ".eE") {
			return int(whole)
		}
		float, _ := v.Float64()
		return float
	}
	return value
}

func main() {
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	var cases []testCase
	if err := decoder.Decode(&cases); err != nil {
		panic(err)
	}
	results := make([]result, 0, len(cases))
	for _, c := range cases {
		var out bytes.Buffer
		parsed, err := template.New("case").Parse(c.Template)
		if err == nil {
			err = parsed.Execute(&out, numbers(c.Data))
		}
		results = append(results, result{Out: out.String(), Err: err != nil})
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		panic(err)
	}
}
