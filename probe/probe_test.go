package probe

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func node(n int) Report {
	r := Report{NVML: "12.580.82", GPUs: []GPU{}}
	for i := 0; i < n; i++ {
		r.GPUs = append(r.GPUs, GPU{Index: i, Name: "NVIDIA H200", UUID: []string{
			"GPU-1a2b3c4d-0000-0000-0000-000000000000",
			"GPU-1a2bffff-0000-0000-0000-000000000001",
			"GPU-77aa0000-0000-0000-0000-000000000002",
			"GPU-88bb0000-0000-0000-0000-000000000003",
		}[i], PCIBusID: "00000000:1" + string(rune('0'+i)) + ":00.0", NUMANode: i / 2})
	}
	return r
}

func withCVD(r Report, v string) Report {
	r.CUDAVisibleDevices = &v
	return r
}

func TestVisible(t *testing.T) {
	cases := []struct {
		name  string
		r     Report
		want  []int // NVML indices, in CUDA ordinal order
		notes int
	}{
		{"unset", node(4), []int{0, 1, 2, 3}, 0},
		{"indices reorder", withCVD(node(4), "2,0"), []int{2, 0}, 0},
		{"spaces", withCVD(node(4), " 3 , 1 "), []int{3, 1}, 0},
		{"uuid", withCVD(node(4), "GPU-77aa0000-0000-0000-0000-000000000002"), []int{2}, 0},
		{"uuid prefix without GPU-", withCVD(node(4), "88bb,1a2b3"), []int{3, 0}, 0},
		{"ambiguous prefix stops", withCVD(node(4), "1,1a2b,0"), []int{1}, 1},
		{"invalid stops the list", withCVD(node(4), "0,7,1"), []int{0}, 1},
		{"negative stops", withCVD(node(4), "-1,0"), nil, 1},
		{"duplicate stops", withCVD(node(4), "1,1,2"), []int{1}, 1},
		{"empty hides all", withCVD(node(4), ""), nil, 0},
		{"trailing comma", withCVD(node(4), "0,"), []int{0}, 0},
		{"mig entry ignored", withCVD(node(4), "MIG-abc"), nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vis, notes := c.r.Visible()
			var got []int
			for _, g := range vis {
				got = append(got, g.Index)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("visible = %v, want %v", got, c.want)
			}
			if len(notes) != c.notes {
				t.Errorf("notes = %q, want %d", notes, c.notes)
			}
		})
	}
}

func TestVisibleSkipsMIG(t *testing.T) {
	r := node(3)
	r.GPUs[1].MIG = true
	vis, _ := r.Visible()
	if len(vis) != 2 || vis[0].Index != 0 || vis[1].Index != 2 {
		t.Fatalf("visible = %+v, want GPUs 0 and 2", vis)
	}
	// With GPU 1 in MIG mode, CUDA ordinal 1 is NVML GPU 2.
	vis, _ = withCVD(r, "1").Visible()
	if len(vis) != 1 || vis[0].Index != 2 {
		t.Fatalf("CUDA_VISIBLE_DEVICES=1 gave %+v, want NVML GPU 2", vis)
	}
}

func TestPlanRoundRobin(t *testing.T) {
	r := node(2)
	wantDev := []int{0, 1, 0, 1, 0}
	wantShare := []int{3, 2, 3, 2, 3}
	for i := range 5 {
		p, err := Plan(i, 5, r)
		if err != nil {
			t.Fatal(err)
		}
		if p.Device != wantDev[i] || p.GPU.Index != wantDev[i] || p.Sharing != wantShare[i] {
			t.Errorf("rank %d: device %d gpu %d sharing %d, want %d %d %d", i, p.Device, p.GPU.Index, p.Sharing, wantDev[i], wantDev[i], wantShare[i])
		}
		if !strings.Contains(p.String(), "share GPU") {
			t.Errorf("rank %d: no sharing note in %q", i, p.String())
		}
	}
}

func TestPlanFollowsCVD(t *testing.T) {
	r := withCVD(node(4), "3,1")
	p, err := Plan(1, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != 1 || p.GPU.Index != 1 || p.Sharing != 1 || len(p.Notes) != 0 {
		t.Fatalf("placement %+v, want CUDA device 1 = NVML GPU 1, exclusive, no notes", p)
	}
	p, err = Plan(0, 2, r)
	if err != nil || p.Device != 0 || p.GPU.Index != 3 {
		t.Fatalf("rank 0: %+v %v, want CUDA device 0 = NVML GPU 3", p, err)
	}
	// One GPU per rank set by the scheduler: every rank opens device 0.
	p, err = Plan(3, 4, withCVD(node(4), "2"))
	if err != nil || p.Device != 0 || p.GPU.Index != 2 || p.Sharing != 4 {
		t.Fatalf("single visible GPU: %+v %v", p, err)
	}
}

func TestPlanNotes(t *testing.T) {
	p, err := Plan(0, 1, node(4))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "3 of 4 visible GPUs get no rank") {
		t.Errorf("notes %q", p.Notes)
	}
	r := node(2)
	r.GPUs[1].Name = "NVIDIA A100"
	p, _ = Plan(0, 2, r)
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "CUDA_DEVICE_ORDER") {
		t.Errorf("mixed models: notes %q", p.Notes)
	}
	r.CUDADeviceOrder = "PCI_BUS_ID"
	if p, _ = Plan(0, 2, r); len(p.Notes) != 0 {
		t.Errorf("PCI_BUS_ID order: notes %q", p.Notes)
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name       string
		rank, size int
		r          Report
		want       string
	}{
		{"rank out of range", 2, 2, node(2), "out of range"},
		{"negative rank", -1, 2, node(2), "out of range"},
		{"no nvml", 0, 1, Report{NVML: "unavailable: libnvidia-ml.so.1 not found"}, "NVML lists no GPU (unavailable: libnvidia-ml.so.1 not found)"},
		{"hidden", 0, 1, withCVD(node(2), ""), `CUDA_VISIBLE_DEVICES="" hides all 2 GPUs`},
		{"bad entry", 0, 1, withCVD(node(2), "5"), `entry 0 ("5") matches no usable GPU`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Plan(c.rank, c.size, c.r)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestTextAndJSON(t *testing.T) {
	r := withCVD(node(2), "1")
	r.GPUs[0].MemoryTotal = 150754820096
	r.Host = "gpu01"
	r.Driver, r.CUDADriver = "580.82.07", "13.0"
	r.MPI = MPI{Library: "Open MPI v4.1.6", CUDAAware: "yes"}
	r.CPU = CPU{Cores: 16, BLAS: "openblas (SkylakeX)"}
	txt := r.Text()
	for _, want := range []string{
		"host: gpu01", "cpu: 16 cores, BLAS openblas (SkylakeX)", "driver: 580.82.07 (CUDA 13.0)", "gpus: 2",
		"0  NVIDIA H200  GPU-1a2b3c4d-0000-0000-0000-000000000000  pci 00000000:10:00.0  140.4 GiB",
		"numa 0", `CUDA_VISIBLE_DEVICES: "1" (1 visible)`, "mpi: Open MPI v4.1.6 (CUDA-aware: yes)",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("Text() lacks %q:\n%s", want, txt)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.GPUs[0].MemoryTotal != 150754820096 || *back.CUDAVisibleDevices != "1" || back.MPI.CUDAAware != "yes" || back.CPU != r.CPU {
		t.Fatalf("JSON round trip lost fields: %s", b)
	}
	if !strings.Contains(string(b), `"cuda_visible_devices":"1"`) || !strings.Contains(string(b), `"cpu":{"cores":16,"blas":"openblas (SkylakeX)"}`) {
		t.Fatalf("JSON field names changed: %s", b)
	}
}

func TestInventoryWithoutDriver(t *testing.T) {
	// This machine may or may not have a driver; either way Inventory must
	// not fail, and without GPUs it must say why.
	t.Setenv("CUDA_VISIBLE_DEVICES", "0")
	r, err := Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if r.CUDAVisibleDevices == nil || *r.CUDAVisibleDevices != "0" {
		t.Fatalf("CUDA_VISIBLE_DEVICES not captured: %+v", r)
	}
	if len(r.GPUs) == 0 && !strings.HasPrefix(r.NVML, "unavailable") {
		t.Fatalf("no GPUs but NVML = %q", r.NVML)
	}
	t.Logf("%s", r.Text())
}
