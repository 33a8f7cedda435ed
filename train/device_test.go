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

// gpuNamed is the CPU backend under a GPU backend's name.
type gpuNamed struct{ *nn.CPU }

func (gpuNamed) Name() string { return "cuda:0" }

// TestPlacementNote: under mpirun, rank 0 says when ranks share its GPU or GPUs get no
// rank, in one line; nothing when each rank has its own GPU, on the CPU, or when NVML
// cannot answer.
func TestPlacementNote(t *testing.T) {
	gpus := []probe.GPU{
		{Index: 0, Name: "NVIDIA H200", UUID: "GPU-a", PCIBusID: "00000000:19:00.0"},
		{Index: 1, Name: "NVIDIA H200", UUID: "GPU-b", PCIBusID: "00000000:3b:00.0"},
	}
	with := func(gpus []probe.GPU) func() (probe.Report, error) {
		return func() (probe.Report, error) { return probe.Report{GPUs: gpus}, nil }
	}
	gpu := gpuNamed{nn.NewCPU()}
	for _, tc := range []struct {
		name          string
		be            nn.Backend
		size          int
		inventory     func() (probe.Report, error)
		want, wantNot string
	}{
		{"4 ranks on 2 GPUs", gpu, 4, with(gpus), "note: GPU placement on this node: 2 local ranks share GPU 0 (GPU-a)", "\n"},
		{"1 rank on 2 GPUs", gpu, 1, with(gpus), "1 of 2 visible GPUs get no rank", "share"},
		{"2 ranks on 2 GPUs", gpu, 2, with(gpus), "", ""},
		{"the CPU", nn.NewCPU(), 4, with(gpus), "", ""},
		{"NVML fails", gpu, 4, func() (probe.Report, error) { return probe.Report{}, errors.New("no NVML") }, "", ""},
	} {
		got := placementNote(tc.be, 0, tc.size, tc.inventory)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) || (tc.wantNot != "" && strings.Contains(got, tc.wantNot)) {
			t.Errorf("%s: note %q, want %q", tc.name, got, tc.want)
		}
	}
}
