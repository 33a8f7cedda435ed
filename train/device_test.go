package train

import (
	"errors"
	"strings"
	"testing"

	"mct/nn"
	"mct/probe"
)

// TestIdleGPUs: rank 0 notes GPUs that a build without CUDA leaves idle under --device
// auto, and only then: not for --device cpu, not without visible GPUs (none, or
// CUDA_VISIBLE_DEVICES empty), not when NVML cannot answer.
func TestIdleGPUs(t *testing.T) {
	h200 := probe.GPU{Name: "NVIDIA H200", UUID: "GPU-1", PCIBusID: "00000000:19:00.0"}
	empty := ""
	with := func(gpus []probe.GPU, visible *string) func() (probe.Report, error) {
		return func() (probe.Report, error) { return probe.Report{GPUs: gpus, CUDAVisibleDevices: visible}, nil }
	}
	cpu := nn.NewCPU()
	if got := idleGPUs("auto", cpu, with([]probe.GPU{h200, h200}, nil)); !strings.Contains(got, "2 GPU(s) (NVIDIA H200)") || !strings.Contains(got, "make cuda") {
		t.Errorf("two GPUs, --device auto: %q", got)
	}
	for name, got := range map[string]string{
		"--device cpu":            idleGPUs("cpu", cpu, with([]probe.GPU{h200}, nil)),
		"no GPU":                  idleGPUs("auto", cpu, with(nil, nil)),
		"CUDA_VISIBLE_DEVICES=''": idleGPUs("auto", cpu, with([]probe.GPU{h200}, &empty)),
		"NVML fails":              idleGPUs("auto", cpu, func() (probe.Report, error) { return probe.Report{}, errors.New("no NVML") }),
	} {
		if got != "" {
			t.Errorf("%s: %q, want no note", name, got)
		}
	}
}

// TestAutoFallbackSaysWhy: in a CUDA build whose GPU does not open, --device auto runs on
// the CPU and says why; --device cuda fails with the opener's error.
func TestAutoFallbackSaysWhy(t *testing.T) {
	devicesMu.Lock()
	old, had := devices["cuda"]
	devices["cuda"] = func(int, int, string) (nn.Backend, error) { return nil, errors.New("no CUDA device visible") }
	devicesMu.Unlock()
	t.Cleanup(func() {
		devicesMu.Lock()
		defer devicesMu.Unlock()
		if had {
			devices["cuda"] = old
		} else {
			delete(devices, "cuda")
		}
	})
	be, note, err := openDevice("auto", 0, 1, "bf16")
	if err != nil || be.Name() != "cpu" || !strings.Contains(note, "GPU did not open (no CUDA device visible)") {
		t.Errorf("--device auto: backend %v, note %q, error %v; want the CPU and the reason", be, note, err)
	}
	if _, _, err := openDevice("cuda", 0, 1, "bf16"); err == nil || !strings.Contains(err.Error(), "no CUDA device visible") {
		t.Errorf("--device cuda: error %v, want the opener's", err)
	}
}
