package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Values merge as Helm coalesces them: maps key by key, lists replaced whole,
// null deletes, numbers float64.
func TestMergeLikeHelm(t *testing.T) {
	base, err := readYAML([]byte("a: {b: 1, c: [1, 2], d: x}\ne: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := readYAML([]byte("a: {c: [3], d: null, f: true}\ne: {g: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	merge(base, layer)
	want := map[string]interface{}{
		"a": map[string]interface{}{"b": 1.0, "c": []interface{}{3.0}, "f": true},
		"e": map[string]interface{}{"g": 1.0},
	}
	if !reflect.DeepEqual(base, want) {
		t.Errorf("merged %#v, want %#v", base, want)
	}
}

// toYaml: sorted keys, unindented lists, big integers as integers, no final
// newline (what Helm's sigs.k8s.io/yaml writes).
func TestToYAMLLikeHelm(t *testing.T) {
	values, err := readYAML([]byte("z: 1073741824\na: [x, {k: v}]\nm: 0.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := toYAML(values)
	want := "a:\n- x\n- k: v\nm: 0.5\nz: 1073741824"
	if got != want {
		t.Errorf("toYAML = %q, want %q", got, want)
	}
	// YAML 1.1, as Helm reads values: "on" is a boolean.
	if m := fromYAML("a: on\nb: 'on'\n"); m["a"] != true || m["b"] != "on" {
		t.Errorf("fromYAML(on) = %#v", m)
	}
	if m := fromYAML("a: [1"); m["Error"] == nil {
		t.Errorf("fromYAML of bad YAML = %v, want an Error key", m)
	}
}

func TestRequired(t *testing.T) {
	for _, v := range []interface{}{nil, ""} {
		if _, err := required("need it", v); err == nil || err.Error() != "need it" {
			t.Errorf("required(%#v) error = %v", v, err)
		}
	}
	if v, err := required("need it", 0.0); err != nil || v != 0.0 {
		t.Errorf("required(0) = %v, %v", v, err)
	}
}

// fileWriter returns a function that writes a file of a test chart under
// dir (name with slashes), making its directories.
func fileWriter(t *testing.T, dir string) func(name, text string) {
	return func(name, text string) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A tiny chart: partials are not output, include/tpl/Files.Get work, empty
// documents are dropped, NOTES.txt only with notes, fail stops the render.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := fileWriter(t, dir)
	write("Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: \"2\"\n")
	write("values.yaml", "port: 80\ngreeting: hi {{ .Release.Name }}\nfailNow: false\n")
	write("files/data.txt", "from a file")
	write("templates/_helpers.tpl", `{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end }}`)
	write("templates/a.yaml", `{{- if .Values.failNow }}{{ fail "stopped" }}{{ end -}}
kind: A
name: {{ include "demo.name" . }}
port: {{ .Values.port }}
greeting: {{ tpl .Values.greeting . }}
file: {{ .Files.Get "files/data.txt" }}
missing: "{{ .Files.Get "files/none" }}{{ .Values.nothing }}"
---
# only a comment
---
kind: B
version: {{ .Chart.AppVersion }}`)
	write("templates/NOTES.txt", "notes for {{ .Release.Name }}")

	o := options{chartDir: dir, name: "rel", namespace: "ns", kubeVersion: "v1.29.0"}
	out, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n# Source: demo/templates/a.yaml\nkind: A\nname: demo-rel\nport: 80\n" +
		"greeting: hi rel\nfile: from a file\nmissing: \"\"\n" +
		"---\n# Source: demo/templates/a.yaml\nkind: B\nversion: 2\n"
	if out != want {
		t.Errorf("run =\n%s\nwant\n%s", out, want)
	}

	o.notes = true
	if out, err := run(o); err != nil || out != "notes for rel" {
		t.Errorf("notes = %q, %v", out, err)
	}

	// Fields Helm does not have fail, as they would in Helm.
	for _, text := range []string{"{{ .Release.Nme }}", `{{ .Files.Glob "x" }}`, "{{ nosuch 1 }}"} {
		write("templates/b.yaml", text)
		if _, err := run(options{chartDir: dir, name: "r", kubeVersion: "v1.29.0"}); err == nil {
			t.Errorf("%s rendered without an error", text)
		}
	}
	os.Remove(filepath.Join(dir, "templates", "b.yaml"))

	o.notes = false
	write("fail.yaml", "failNow: true\n")
	o.valueFiles = listFlag{filepath.Join(dir, "fail.yaml")}
	if _, err := run(o); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("run with fail = %v, want the fail message", err)
	}
}

// A parent chart with a subchart under charts/: the subchart's values are
// its values.yaml under the parent's section for it, with the parent's
// global merged over its own; each template sees its own chart; NOTES.txt
// is the parent's only; -values-json writes each subchart's values too.
func TestSubchart(t *testing.T) {
	dir := t.TempDir()
	write := fileWriter(t, dir)
	write("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 1.0.0\n")
	write("values.yaml", "global: {registry: r.example.com, shared: parent}\nsub: {port: 81}\n")
	write("templates/p.yaml", "kind: P\nsubPort: {{ .Values.sub.port }}\nsubKeep: {{ .Values.sub.keep }}")
	write("templates/NOTES.txt", "parent notes")
	write("charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 2.0.0\n")
	write("charts/sub/values.yaml", "port: 80\nkeep: yes\nglobal: {shared: child, own: 1}\n")
	write("charts/sub/files/f.txt", "sub file")
	write("charts/sub/templates/_h.tpl", `{{- define "sub.name" -}}{{ .Chart.Name }}-{{ .Chart.Version }}{{- end }}`)
	write("charts/sub/templates/s.yaml", "kind: S\nname: {{ include \"sub.name\" . }}\n"+
		"port: {{ .Values.port }}\nglobal: {{ toJson .Values.global }}\n"+
		"file: {{ .Files.Get \"files/f.txt\" }}\ntemplate: {{ .Template.Name }}")
	write("charts/sub/templates/NOTES.txt", "sub notes")

	valuesJSON := filepath.Join(dir, "values.json")
	o := options{chartDir: dir, name: "rel", namespace: "ns", kubeVersion: "v1.29.0", valuesJSON: valuesJSON}
	out, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n# Source: shop/charts/sub/templates/s.yaml\nkind: S\nname: sub-2.0.0\nport: 81\n" +
		`global: {"own":1,"registry":"r.example.com","shared":"parent"}` + "\n" +
		"file: sub file\ntemplate: shop/charts/sub/templates/s.yaml\n" +
		"---\n# Source: shop/templates/p.yaml\nkind: P\nsubPort: 81\nsubKeep: true\n"
	if out != want {
		t.Errorf("run =\n%s\nwant\n%s", out, want)
	}
	sub, err := os.ReadFile(filepath.Join(dir, "values.sub.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fromJSON(string(sub)); got["port"] != 81.0 || got["global"] == nil {
		t.Errorf("values.sub.json = %s", sub)
	}
	o.notes = true
	if out, err := run(o); err != nil || out != "parent notes" {
		t.Errorf("notes = %q, %v", out, err)
	}
}
