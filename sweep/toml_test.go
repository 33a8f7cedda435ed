package sweep

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTOMLGridEqualsJSON(t *testing.T) {
	dir := t.TempDir()
	toml := filepath.Join(dir, "grid.toml")
	os.WriteFile(toml, []byte(`# MCT against its baselines
comment = 'label fractions × "algorithms"'
ranks = 2
launcher_args = ["--oversubscribe"]

[fixed]
data = "data/fmnist"   # relative to this file
epochs = 1_000
"mct-lr" = +1.25e-4
hard = true

[vary]
algo = ["supervised",
        "mct",   # the method
]
views = [["hog", "gabor"], {name = "nets", value = ["mobilenet", "inception"]}]
labeled = [0.010, 0.1]
tag = ["caf\u00e9\t"]
`), 0o644)
	json := filepath.Join(dir, "grid.json")
	os.WriteFile(json, []byte(`{"comment": "x", "ranks": 2, "launcher_args": ["--oversubscribe"],
		"fixed": {"data": "data/fmnist", "epochs": 1000, "mct-lr": 1.25e-4, "hard": true},
		"vary": {"algo": ["supervised", "mct"],
		         "views": [["hog", "gabor"], {"name": "nets", "value": ["mobilenet", "inception"]}],
		         "labeled": [0.010, 0.1], "tag": ["café\t"]}}`), 0o644)
	a, err := Expand(toml)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Expand(json)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("TOML and JSON grids differ:\n%+v\n%+v", a, b)
	}
	if len(a) != 8 || a[3].Name != "algo-supervised_views-nets_labeled-0.1_tag-caf--" {
		t.Errorf("%d combinations, #3 %q", len(a), a[3].Name)
	}
	g, err := Load(toml)
	if err != nil || g.Ranks != 2 || !reflect.DeepEqual(g.LauncherArgs, []string{"--oversubscribe"}) {
		t.Errorf("load: %v %+v", err, g)
	}
}

func TestTOMLErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"ranks = 2\nx = \"open\n", "line 2: string not closed on its line"},
		{"[fixed]\nlr = 1\nlr = 2\n", `line 3: key "lr" given twice`},
		{"[fixed]\n[fixed]\n", "line 2: table [fixed] defined twice"},
		{"[[vary]]\n", "line 1: arrays of tables"},
		{"[fixed]\nwhen = 2024-01-02\n", `line 2: "2024-01-02": dates and times`},
		{"[fixed]\nn = 0x10\n", `line 2: "0x10": write numbers in decimal`},
		{"[fixed]\ns = '''a'''\n", "line 2: multi-line strings"},
		{"[fixed]\na.b = 1\n", "line 2: after key \"a\": want = (dotted keys are not supported)"},
		{"[fixed]\nx = hog\n", `line 2: "hog" is not a string, number, boolean`},
		{"[vary]\nv = [{name = \"a\",\n value = 1}]\n", "line 2: inline table not closed"},
		{"[vary]\nseed = [1, 2\n", "line 3: array not closed with ]"},
		{"ranks = 2 3\n", `line 1: unexpected "3" after the value`},
		{"[fixed]\nx = \"\\q\"\n", `line 2: unknown escape \q`},
		{"[fixed]\nx = 1__0\n", "underscores go between digits"},
		{"[varry]\nseed = [1]\n", `unknown field "varry"`},
		{"[fixed]\ndata = \"../up\"\n", `field fixed.data: "../up" leaves the grid's directory`},
	} {
		p := filepath.Join(t.TempDir(), "grid.toml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := Expand(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q\n got error %v\nwant it to name %s and contain %q", tc.body, err, p, tc.want)
		}
	}
}
