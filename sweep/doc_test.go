package sweep

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mct/data"
	_ "mct/data/pretrained" // registers mobilenet_v2 and inception_v3, as mct does
)

// docBlocks returns the indented code blocks of doc.go's package comment, one string
// per run of "//\t" lines, the comment markers removed.
func docBlocks(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	for _, l := range strings.Split(string(src), "\n") {
		if code, ok := strings.CutPrefix(l, "//\t"); ok {
			cur = append(cur, code)
			continue
		}
		if cur != nil {
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
			cur = nil
		}
	}
	return blocks
}

// TestDocGrids: the JSON grid and the TOML grid of the package comment parse, are the
// same grid, and name only views that mct can build (the comment builds its data/fmnist
// from them), so the documented example cannot drift from what the code accepts.
func TestDocGrids(t *testing.T) {
	dir := t.TempDir()
	var jsonPath, tomlPath string
	for _, b := range docBlocks(t) {
		switch {
		case strings.HasPrefix(b, "{"):
			jsonPath = filepath.Join(dir, "grid.json")
			os.WriteFile(jsonPath, []byte(b), 0o644)
		case strings.Contains(b, "[vary]"):
			tomlPath = filepath.Join(dir, "grid.toml")
			os.WriteFile(tomlPath, []byte(b), 0o644)
		}
	}
	if jsonPath == "" || tomlPath == "" {
		t.Fatalf("doc.go: found the JSON grid %v and the TOML grid %v, want both", jsonPath != "", tomlPath != "")
	}
	fromJSON, err := Expand(jsonPath)
	if err != nil {
		t.Fatalf("doc.go's JSON grid: %v", err)
	}
	fromTOML, err := Expand(tomlPath)
	if err != nil {
		t.Fatalf("doc.go's TOML grid: %v", err)
	}
	if !reflect.DeepEqual(fromJSON, fromTOML) {
		t.Errorf("doc.go's JSON and TOML grids differ:\n%+v\n%+v", fromJSON, fromTOML)
	}
	// 3 algorithms × 2 view sets × 3 fractions × 3 seeds, the seed innermost.
	if len(fromJSON) != 54 || fromJSON[1].Name != "algo-supervised_views-hog+gabor_labeled-0.01_seed-2" {
		t.Errorf("%d combinations, the second %q", len(fromJSON), fromJSON[1].Name)
	}
	families := data.Families()
	seen := map[string]bool{}
	for _, c := range fromJSON {
		for _, a := range c.Args() {
			views, ok := strings.CutPrefix(a, "--views=")
			if !ok {
				continue
			}
			for _, v := range strings.Split(views, ",") {
				seen[v] = true
			}
		}
	}
	for v := range seen {
		if family, _, _ := strings.Cut(v, ":"); !slices.Contains(families, family) {
			t.Errorf("doc.go's grid names view %q, which mct cannot build (families: %v)", v, families)
		}
	}
	if len(seen) != 4 {
		t.Errorf("views %v, want the 4 the comment's `mct data build` names", seen)
	}
}
