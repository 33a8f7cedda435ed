package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeasureAndModel runs the program end to end at a tiny size: mct bench in one
// process and under mpirun with 2 and 4 ranks, the byte accounting checked against every
// measured layout (the check that broke when views of one process stopped all-gathering
// their logits), the BatchNorm reduces decoded, the tables and the plot written.
func TestMeasureAndModel(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Fatal("mpirun not found: install openmpi-bin (scripts/setup.sh does)")
	}
	dir := t.TempDir()
	mct := filepath.Join(dir, "mct")
	if out, err := exec.Command("go", "build", "-o", mct, "mct").CombinedOutput(); err != nil {
		t.Fatalf("build mct: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err := mainErr([]string{"-mct", mct, "-np", "2,4", "-dims", "12,7", "-hidden", "8,8,8", "-batch", "32",
		"-per-replica", "16", "-updates", "1", "-warmup", "1", "-repeat", "1", "-plot", filepath.Join(dir, "s.png")}, &out)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| strong | local, 2 views (goroutines, 1 process) | 1 process | 32 |",
		"| weak | mpirun -np 4 (2 views × 2 replicas)",
		"BatchNorm all-reduces decoded from the bytes: 4 per layer per update",
		"| device floor 0.31 ms | strong | 512 | 256 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
