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
