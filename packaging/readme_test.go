package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The README's fuzzing paragraph, `make fuzz` and the code name the same
// fuzz targets, each with its package.
func TestFuzzTargetsListed(t *testing.T) {
	code := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "dist" || d.Name() == "demo") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`).FindAllStringSubmatch(string(b), -1) {
			code[filepath.Base(filepath.Dir(path))+"."+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	makefile := map[string]bool{}
	for _, m := range regexp.MustCompile(`-fuzz (Fuzz\w+) .*\./(\w+)/`).FindAllStringSubmatch(string(mk), -1) {
		makefile[m[2]+"."+m[1]] = true
	}
	rd, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, para, _ := strings.Cut(string(rd), "\nFuzzing: ")
	para, _, _ = strings.Cut(para, "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	readme := map[string]bool{}
	for _, part := range regexp.MustCompile("\\(package `(\\w+)`\\)").FindAllStringSubmatchIndex(para, -1) {
		pkg := para[part[2]:part[3]]
		before := para[:part[0]]
		if i := strings.LastIndex(before, "(package `"); i >= 0 {
			before = before[i:]
		}
		for _, m := range regexp.MustCompile("`(Fuzz\\w+)`").FindAllStringSubmatch(before, -1) {
			readme[pkg+"."+m[1]] = true
		}
	}
	if want := keys(code); !slices.Equal(keys(makefile), want) || !slices.Equal(keys(readme), want) {
		t.Errorf("fuzz targets differ:\n  code:       %v\n  make fuzz:  %v\n  README:     %v", want, keys(makefile), keys(readme))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
