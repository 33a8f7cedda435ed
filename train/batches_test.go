package train

import (
	"strings"
	"testing"
)

// TestCheckBatches: every training batch has at least 2 rows (BatchNorm's statistics) and
// one row per replica of its view; a run that would not is one line naming the flag (a
// 1-row labeled set or batch panicked in the first step, a replica without a row in
// Forward).
func TestCheckBatches(t *testing.T) {
	cfg := Defaults()
	for _, c := range []struct {
		algo              string
		batch, lbatch, nL int
		replicas          int
		want              string
	}{
		{"mct", 1024, 0, 600, 1, ""},
		{"mct", 1024, 0, 2, 1, ""},
		{"mct", 1024, 0, 1, 1, "gives 1 labeled example(s), fewer than the 2 a training batch needs"},
		{"mct", 1024, 0, 3, 4, "gives 3 labeled example(s), fewer than the 4"},
		{"mct", 1024, 3, 600, 4, "--labeled-batch 3: fewer than the 4 rows"},
		{"mct", 3, 0, 600, 4, "--batch 3: fewer than the 4 rows"},
		{"mct", 4, 0, 600, 4, ""},
		{"supervised", 3, 0, 600, 2, ""},                                 // no unlabeled batch; the labeled one is min(batch, labeled) = 3
		{"supervised", 3, 0, 600, 4, "--batch 3: fewer than the 4 rows"}, // the labeled batch is min(batch, labeled)
		{"supervised", 3, 4, 600, 4, ""},
		{"cotrain", 1024, 2, 600, 3, "--labeled-batch 2: fewer than the 3 rows"},
	} {
		cfg.Algo, cfg.Batch, cfg.LabeledBatch = c.algo, c.batch, c.lbatch
		err := checkBatches(cfg, c.nL, c.replicas)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: error %v, want %q", c, err, c.want)
		}
	}
}
