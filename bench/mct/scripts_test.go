package mct

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mct/data"
	"mct/internal/testenv"
)

// scriptViews are the views ablation.sh and search.py train on.
var scriptViews = []string{"hog", "gabor", "pixels", "randconv", "lbp"}

// tinyDataset writes a dataset directory with scriptViews as random 6-wide views of
// 1200 train and 200 test rows of 4 classes, each view carrying the class in its mean,
// so that runs on it take a fraction of a second and their views learn something.
func tinyDataset(t *testing.T, dir string) string {
	t.Helper()
	const classes, dim = 4, 6
	rng := rand.New(rand.NewPCG(3, 4))
	labels := map[string][]int32{"train": make([]int32, 1200), "test": make([]int32, 200)}
	files := map[string][2]string{}
	var labelFiles [2]string
	for i, split := range []string{"train", "test"} {
		y := labels[split]
		for r := range y {
			y[r] = int32(rng.IntN(classes))
		}
		labelFiles[i] = filepath.Join(dir, "y-"+split+".npy")
		if err := data.WriteNPY(labelFiles[i], data.NewInt64([]int{len(y)}, y)); err != nil {
			t.Fatal(err)
		}
		for _, v := range scriptViews {
			x := make([]float32, len(y)*dim)
			for r := range y {
				for c := range dim {
					x[r*dim+c] = float32(rng.NormFloat64())
					if c == int(y[r]) {
						x[r*dim+c] += 3
					}
				}
			}
			f := filepath.Join(dir, v+"-"+split+".npy")
			if err := data.WriteNPY(f, data.NewFloat32([]int{len(y), dim}, x)); err != nil {
				t.Fatal(err)
			}
			pair := files[v]
			pair[i] = f
			files[v] = pair
		}
	}
	out := filepath.Join(dir, "tiny")
	if err := data.Import(files, labelFiles, classes, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// scriptRoot is a stand-in repository root for ablation.sh and search.py, which run
// ./mct from the root they live under: it holds copies of both scripts and an ./mct
// that runs the real mct, every `mct train` on the tiny dataset with small flags put
// before the script's own (the last value of a flag wins, so each variant keeps its change).
func scriptRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	bin := filepath.Join(root, "bin", "mct")
	if out, err := exec.Command("go", "build", "-o", bin, "mct").CombinedOutput(); err != nil {
		t.Fatalf("build mct: %v\n%s", err, out)
	}
	tiny := tinyDataset(t, t.TempDir())
	wrapper := fmt.Sprintf(`#!/bin/sh
if [ "$1" = train ]; then
  shift
  exec %q train --data %q --labeled 0.05 --val 200 --warmup-epochs 30 --lr 0.01 --hidden 8,8 --batch 128 "$@"
fi
exec %q "$@"
`, bin, tiny, bin)
	if err := os.WriteFile(filepath.Join(root, "mct"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bench", "mct"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ablation.sh", "search.py"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "bench", "mct", f), src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestAblationAndSearch runs bench/mct/ablation.sh and bench/mct/search.py end to end as
// their headers say, with every training shrunk to a tiny dataset: every variant's flags
// must still be flags of mct train, every run must finish, and both tables must come out
// whole (the README's Results quote them).
func TestAblationAndSearch(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3 not found: apt-get install python3")
	}
	root := scriptRoot(t)

	cmd := exec.Command("bash", filepath.Join(root, "bench", "mct", "ablation.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(root, "runs", "ablation", "*.log"))
		var tails strings.Builder
		for _, l := range logs {
			if b, _ := os.ReadFile(l); len(b) > 0 {
				fmt.Fprintf(&tails, "%s: %s\n", filepath.Base(l), b)
			}
		}
		t.Fatalf("ablation.sh: %v\n%s\n%s", err, out, tails.String())
	}
	s := string(out)
	// One row per seed-1 variant: 14 of the default pair and its changes, 7 view pairs.
	row := regexp.MustCompile(`(?m)^\| (\S+) \| \d+\.\d\d \| \d+\.\d\d \| [+-]\d+\.\d\d \| (\d\.\d{3})? \|$`)
	rows := row.FindAllStringSubmatch(s, -1)
	if len(rows) != 21 {
		t.Errorf("ablation.sh: %d variant rows, want 21:\n%s", len(rows), s)
	}
	for _, want := range []string{"| default |", "| no-feedback |", "| pair-hog,randconv |", "| views+randconv |"} {
		if !strings.Contains(s, want) {
			t.Errorf("ablation.sh: no row %q:\n%s", want, s)
		}
	}
	// mct report's table of seeds 1–3 with and without the feedback.
	if !regexp.MustCompile(`(?m)^\| mct \| hog\+gabor \| .* \| 3 \(1,2,3\) \| `).MatchString(s) ||
		!regexp.MustCompile(`(?m)^\| mct \| hog\+gabor \| .* \| true \| 3 \(1,2,3\) \| `).MatchString(s) {
		t.Errorf("ablation.sh: no report rows over seeds 1,2,3 with and without feedback:\n%s", s)
	}

	cmd = exec.Command(python, filepath.Join("bench", "mct", "search.py"), "2", "runs/search")
	cmd.Dir = root
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("search.py: %v\n%s", err, out)
	}
	s = string(out)
	if strings.Contains(s, "failed") {
		logs, _ := filepath.Glob(filepath.Join(root, "runs", "search", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s: %s", filepath.Base(l), b)
		}
	}
	draws := regexp.MustCompile("(?m)^\\| r0[01] \\| \\d+\\.\\d\\d \\| \\d+\\.\\d\\d \\| [+-]\\d+\\.\\d\\d \\| `--mct-lr=\\S+ .*` \\|$")
	if n := len(draws.FindAllString(s, -1)); n != 2 {
		t.Errorf("search.py 2: %d finished draws, want 2:\n%s", n, s)
	}
}
