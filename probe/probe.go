package probe

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// GPU is one physical GPU as NVML reports it.
type GPU struct {
	Index       int    `json:"index"` // NVML index (PCI bus order)
	Name        string `json:"name"`
	UUID        string `json:"uuid"`
	PCIBusID    string `json:"pci_bus_id"`
	MemoryTotal uint64 `json:"memory_total_bytes"`
	MemoryFree  uint64 `json:"memory_free_bytes"`
	CCMajor     int    `json:"cc_major"` // CUDA compute capability
	CCMinor     int    `json:"cc_minor"`
	NUMANode    int    `json:"numa_node"` // -1 when the platform does not say
	MIG         bool   `json:"mig"`       // MIG mode on: CUDA sees its instances, not the GPU
}

// MPI describes the MPI library the binary runs with. Inventory leaves it
// empty: the caller fills it from mct/ranks (LibraryVersion, CUDAAware), which
// this package does not import so that it stays free of MPI.
type MPI struct {
	Library   string `json:"library,omitempty"`
	CUDAAware string `json:"cuda_aware,omitempty"` // "yes", "no" or "unknown"
}

// CPU is the host side of the node, filled by the caller (from mct/blas, which this
// package does not import).
type CPU struct {
	Cores int    `json:"cores"` // logical CPUs this process may use
	BLAS  string `json:"blas,omitempty"`
}

// Report is the node inventory.
type Report struct {
	Host       string `json:"host"`
	CPU        CPU    `json:"cpu"`
	NVML       string `json:"nvml"` // NVML version, or why NVML is unavailable
	Driver     string `json:"driver,omitempty"`
	CUDADriver string `json:"cuda_driver,omitempty"` // highest CUDA version the driver supports, "13.0"
	GPUs       []GPU  `json:"gpus"`
	// CUDAVisibleDevices is the variable as Inventory saw it; nil when unset
	// (all GPUs visible).
	CUDAVisibleDevices *string  `json:"cuda_visible_devices"`
	CUDADeviceOrder    string   `json:"cuda_device_order,omitempty"`
	MPI                MPI      `json:"mpi"`
	Notes              []string `json:"notes,omitempty"`
}

// Placement is where one local rank runs.
type Placement struct {
	LocalRank int `json:"local_rank"`
	LocalSize int `json:"local_size"`
	// Device is the CUDA device ordinal to open inside the process, that is
	// after CUDA_VISIBLE_DEVICES has renumbered the GPUs.
	Device int `json:"device"`
	GPU    GPU `json:"gpu"`
	// Sharing is how many local ranks use this GPU (1: exclusive).
	Sharing int      `json:"sharing"`
	Notes   []string `json:"notes,omitempty"`
}

// captureEnv records the CUDA variables that decide what a process sees.
func (r *Report) captureEnv() {
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		r.CUDAVisibleDevices = &v
	}
	r.CUDADeviceOrder = os.Getenv("CUDA_DEVICE_ORDER")
	if h, err := os.Hostname(); err == nil {
		r.Host = h
	}
}

// Visible returns the GPUs a CUDA process on this node sees, in CUDA ordinal
// order, and notes on entries of CUDA_VISIBLE_DEVICES that CUDA ignores.
func (r Report) Visible() ([]GPU, []string) {
	var usable []GPU
	for _, g := range r.GPUs {
		if !g.MIG {
			usable = append(usable, g)
		}
	}
	if r.CUDAVisibleDevices == nil {
		return usable, nil
	}
	var vis []GPU
	var notes []string
	seen := map[string]bool{}
	entries := strings.Split(*r.CUDAVisibleDevices, ",")
	for i, e := range entries {
		e = strings.TrimSpace(e)
		g, ok := match(e, usable)
		if ok && seen[g.UUID] {
			ok = false
		}
		if !ok {
			// CUDA stops at the first entry it cannot use.
			if e != "" || i < len(entries)-1 {
				notes = append(notes, fmt.Sprintf("CUDA_VISIBLE_DEVICES entry %d (%q) matches no usable GPU: CUDA ignores it and every entry after it", i, e))
			}
			break
		}
		seen[g.UUID] = true
		vis = append(vis, g)
	}
	return vis, notes
}

// match resolves one CUDA_VISIBLE_DEVICES entry against the GPUs CUDA can
// use whole: an index into that enumeration, or a unique prefix of a GPU UUID
// ("GPU-…", the "GPU-" part optional as CUDA allows). MIG instances
// ("MIG-…") are not placed by this package.
func match(e string, gpus []GPU) (GPU, bool) {
	if e == "" {
		return GPU{}, false
	}
	if n, err := strconv.Atoi(e); err == nil {
		if n < 0 || n >= len(gpus) {
			return GPU{}, false
		}
		return gpus[n], true
	}
	if strings.HasPrefix(e, "MIG-") {
		return GPU{}, false
	}
	want := strings.ToLower(strings.TrimPrefix(e, "GPU-"))
	var found []GPU
	for _, g := range gpus {
		if strings.HasPrefix(strings.ToLower(strings.TrimPrefix(g.UUID, "GPU-")), want) {
			found = append(found, g)
		}
	}
	if len(found) != 1 {
		return GPU{}, false
	}
	return found[0], true
}

// Plan places local rank localRank of localSize ranks on this node on a GPU.
// Ranks go round-robin over the visible GPUs: rank i uses visible GPU
// i mod (number visible). It fails when no GPU is visible, saying why.
func Plan(localRank, localSize int, r Report) (Placement, error) {
	if localSize < 1 || localRank < 0 || localRank >= localSize {
		return Placement{}, fmt.Errorf("probe: local rank %d of %d ranks is out of range", localRank, localSize)
	}
	vis, notes := r.Visible()
	if len(vis) == 0 {
		why := "NVML lists no GPU (" + r.NVML + ")"
		if len(r.GPUs) > 0 {
			why = fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q hides all %d GPUs", deref(r.CUDAVisibleDevices), len(r.GPUs))
			if len(notes) > 0 {
				why += "; " + notes[0]
			}
		}
		return Placement{}, fmt.Errorf("no GPU visible to local rank %d: %s", localRank, why)
	}
	d := localRank % len(vis)
	p := Placement{LocalRank: localRank, LocalSize: localSize, Device: d, GPU: vis[d], Notes: notes}
	for i := 0; i < localSize; i++ {
		if i%len(vis) == d {
			p.Sharing++
		}
	}
	if p.Sharing > 1 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d local ranks share GPU %d (%s): they divide its memory and compute", p.Sharing, vis[d].Index, vis[d].UUID))
	}
	if localSize < len(vis) {
		p.Notes = append(p.Notes, fmt.Sprintf("%d of %d visible GPUs get no rank", len(vis)-localSize, len(vis)))
	}
	if !sameModel(vis) && r.CUDADeviceOrder != "PCI_BUS_ID" {
		p.Notes = append(p.Notes, "GPUs of different models: CUDA orders them fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; set it so that ordinals follow this list")
	}
	return p, nil
}

func sameModel(g []GPU) bool {
	for _, x := range g {
		if x.Name != g[0].Name {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Text renders the report for people.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "host: %s\n", r.Host)
	if r.CPU.Cores > 0 {
		cores := "cores"
		if r.CPU.Cores == 1 {
			cores = "core"
		}
		fmt.Fprintf(&b, "cpu: %d %s, BLAS %s\n", r.CPU.Cores, cores, orUnknown(r.CPU.BLAS))
	}
	fmt.Fprintf(&b, "nvml: %s\n", r.NVML)
	if r.Driver != "" {
		fmt.Fprintf(&b, "driver: %s (CUDA %s)\n", r.Driver, r.CUDADriver)
	}
	fmt.Fprintf(&b, "gpus: %d\n", len(r.GPUs))
	for _, g := range r.GPUs {
		numa := "?"
		if g.NUMANode >= 0 {
			numa = strconv.Itoa(g.NUMANode)
		}
		mig := ""
		if g.MIG {
			mig = "  MIG on"
		}
		fmt.Fprintf(&b, "  %d  %s  %s  pci %s  %.1f GiB (%.1f free)  cc %d.%d  numa %s%s\n",
			g.Index, g.Name, g.UUID, g.PCIBusID, gib(g.MemoryTotal), gib(g.MemoryFree), g.CCMajor, g.CCMinor, numa, mig)
	}
	if r.CUDAVisibleDevices == nil {
		b.WriteString("CUDA_VISIBLE_DEVICES: unset (all GPUs visible)\n")
	} else {
		vis, _ := r.Visible()
		fmt.Fprintf(&b, "CUDA_VISIBLE_DEVICES: %q (%d visible)\n", *r.CUDAVisibleDevices, len(vis))
	}
	if r.MPI.Library != "" || r.MPI.CUDAAware != "" {
		fmt.Fprintf(&b, "mpi: %s (CUDA-aware: %s)\n", orUnknown(r.MPI.Library), orUnknown(r.MPI.CUDAAware))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

// String renders one placement on a line, with its notes after it.
func (p Placement) String() string {
	s := fmt.Sprintf("local rank %d/%d -> cuda device %d = GPU %d %s (%s, pci %s), shared by %d",
		p.LocalRank, p.LocalSize, p.Device, p.GPU.Index, p.GPU.Name, p.GPU.UUID, p.GPU.PCIBusID, p.Sharing)
	for _, n := range p.Notes {
		s += "\n  note: " + n
	}
	return s
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
