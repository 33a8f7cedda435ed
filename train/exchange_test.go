package train

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The teacher logits passed from backend to backend (peerLogits, the default with the
// views in one process) and through the host (MCT_DEVICE_EXCHANGE=0, the path MPI takes)
// give the same run bit for bit: parameters, and every metrics.jsonl record (h, losses,
// pseudo-label accuracy, the views' agreement counted on the backend). Three views, so
// that a middle view's logits come from both sides.
func TestExchangeSameRun(t *testing.T) {
	dir, all := synthDir(t)
	run := func(viaHost bool) (*Summary, []byte) {
		want := exchangeBackends
		t.Setenv("MCT_DEVICE_EXCHANGE", "1")
		if viaHost {
			want = exchangeHost
			t.Setenv("MCT_DEVICE_EXCHANGE", "0")
		}
		cfg := tinyRun(t, "mct", dir, all[:3], 5)
		cfg.WarmupEpochs, cfg.Patience, cfg.Epochs = 3, 2, 2
		s, err := Run(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if s.Updates == 0 || s.LogitsExchange != want {
			t.Fatalf("%d MCT updates, logits via %q; want some, via %q", s.Updates, s.LogitsExchange, want)
		}
		m, err := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return s, m
	}
	dev, devMetrics := run(false)
	host, hostMetrics := run(true)
	sameParams(t, "logits on the backends", dev, "through the host", host)
	if !bytes.Equal(devMetrics, hostMetrics) {
		t.Errorf("metrics.jsonl differs:\non the backends:\n%s\nthrough the host:\n%s", devMetrics, hostMetrics)
	}
	if !bytes.Contains(devMetrics, []byte(`"agreement":0.`)) {
		t.Errorf("no agreement below 1 in metrics.jsonl, so the comparison says little:\n%s", devMetrics)
	}
}
