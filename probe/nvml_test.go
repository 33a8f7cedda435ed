//go:build cgo

package probe

import (
	"fmt"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// TestInventoryDGXH100 runs Inventory against go-nvml's simulated DGX H100
// (8 GPUs), completed with the bus ids and NUMA nodes that mock leaves out.
func TestInventoryDGXH100(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "6,7")
	s := dgxh100.New()
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		bus := fmt.Sprintf("00000000:%02X:00.0", 0x18+i*0x10)
		node := i / 4
		dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			var p nvml.PciInfo
			for j := range bus {
				p.BusId[j] = int8(bus[j])
			}
			return p, nvml.SUCCESS
		}
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return node, nvml.SUCCESS }
	}
	s.Devices[5].(*server.Device).MigMode = nvml.DEVICE_MIG_ENABLE

	r, err := inventory(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.NVML != "12.550.54.15" || r.Driver != "550.54.15" || r.CUDADriver != "12.4" {
		t.Errorf("versions: nvml %q driver %q cuda %q", r.NVML, r.Driver, r.CUDADriver)
	}
	if len(r.GPUs) != 8 {
		t.Fatalf("%d GPUs, want 8", len(r.GPUs))
	}
	g := r.GPUs[7]
	if g.Name != "NVIDIA H100 80GB HBM3" || g.CCMajor != 9 || g.CCMinor != 0 ||
		g.MemoryTotal != 81920<<20 || g.PCIBusID != "00000000:88:00.0" || g.NUMANode != 1 || g.MIG {
		t.Errorf("GPU 7 = %+v", g)
	}
	if !r.GPUs[5].MIG || len(r.Notes) != 1 {
		t.Errorf("MIG on GPU 5 not reported: %+v %q", r.GPUs[5], r.Notes)
	}
	// GPU 5 is in MIG mode, so CUDA ordinals 6 and 7 are NVML GPUs 7 and
	// (nothing): the list ends after one GPU.
	p, err := Plan(1, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != 0 || p.GPU.Index != 7 || p.Sharing != 2 {
		t.Errorf("placement %+v, want device 0 = GPU 7 shared by 2", p)
	}
}

func TestSysfsNUMA(t *testing.T) {
	if n := sysfsNUMA("00000000:FF:1F.7"); n != -1 {
		t.Errorf("absent device: numa %d, want -1", n)
	}
}
