package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `make fuzz` runs every fuzz target in the tree, each in its own package,
// and the README's fuzzing section names each one: a target added but
// never run, or run from a package that no longer has it, fails here.
func TestMakeFuzzRunsEveryTarget(t *testing.T) {
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	run := map[string]bool{} // "FuzzX ./pkg/"
	for _, m := range regexp.MustCompile(`-fuzz (Fuzz\w+) .*(\./[\w/]+/)`).FindAllStringSubmatch(string(makefile), -1) {
		run[m[1]+" "+m[2]] = true
	}
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	found := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			target := m[1] + " ./" + filepath.Dir(path) + "/"
			found[target] = true
			if !run[target] {
				t.Errorf("make fuzz does not run %s", target)
			}
			if !strings.Contains(string(readme), "`"+m[1]+"`") {
				t.Errorf("the README's fuzzing section does not name %s", m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for target := range run {
		if !found[target] {
			t.Errorf("make fuzz runs %s, which does not exist", target)
		}
	}
}
