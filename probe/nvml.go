//go:build cgo

package probe

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Inventory lists the node's GPUs through NVML and records the CUDA
// environment. Without NVML (no driver, no GPU) it returns a Report that says
// so and no error; the error is for an NVML that loads but fails a query.
func Inventory() (Report, error) {
	return inventory(nvml.New())
}

func inventory(lib nvml.Interface) (Report, error) {
	r := Report{GPUs: []GPU{}}
	r.captureEnv()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			r.NVML = "unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver on this node)"
		} else {
			r.NVML = "unavailable: nvmlInit: " + lib.ErrorString(ret)
		}
		return r, nil
	}
	defer lib.Shutdown()
	if v, ret := lib.SystemGetNVMLVersion(); ret == nvml.SUCCESS {
		r.NVML = v
	} else {
		r.NVML = "loaded"
	}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		r.Driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		r.CUDADriver = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return r, fmt.Errorf("probe: nvmlDeviceGetCount: %s", lib.ErrorString(ret))
	}
	hasNUMA := lib.Extensions().LookupSymbol("nvmlDeviceGetNumaNodeId") == nil
	for i := 0; i < n; i++ {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return r, fmt.Errorf("probe: GPU %d: nvmlDeviceGetHandleByIndex: %s", i, lib.ErrorString(ret))
		}
		g, err := describe(lib, d, i, hasNUMA)
		if err != nil {
			return r, err
		}
		if g.MIG {
			r.Notes = append(r.Notes, fmt.Sprintf("GPU %d has MIG mode on: CUDA sees its MIG instances, which mct does not place; select one with CUDA_VISIBLE_DEVICES=MIG-… and run one rank on it", i))
		}
		r.GPUs = append(r.GPUs, g)
	}
	return r, nil
}

func describe(lib nvml.Interface, d nvml.Device, i int, hasNUMA bool) (GPU, error) {
	g := GPU{Index: i, NUMANode: -1}
	fail := func(what string, ret nvml.Return) (GPU, error) {
		return g, fmt.Errorf("probe: GPU %d: %s: %s", i, what, lib.ErrorString(ret))
	}
	var ret nvml.Return
	if g.Name, ret = d.GetName(); ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetName", ret)
	}
	if g.UUID, ret = d.GetUUID(); ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetUUID", ret)
	}
	pci, ret := d.GetPciInfo()
	if ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetPciInfo", ret)
	}
	g.PCIBusID = cString(pci.BusId[:])
	mem, ret := d.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetMemoryInfo", ret)
	}
	g.MemoryTotal, g.MemoryFree = mem.Total, mem.Free
	if g.CCMajor, g.CCMinor, ret = d.GetCudaComputeCapability(); ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetCudaComputeCapability", ret)
	}
	// MIG and NUMA queries are unsupported on many GPUs and drivers; absence is
	// an answer, not an error.
	if cur, _, ret := d.GetMigMode(); ret == nvml.SUCCESS {
		g.MIG = cur == nvml.DEVICE_MIG_ENABLE
	}
	if hasNUMA {
		if node, ret := d.GetNumaNodeId(); ret == nvml.SUCCESS {
			g.NUMANode = node
		}
	}
	if g.NUMANode < 0 {
		g.NUMANode = sysfsNUMA(g.PCIBusID)
	}
	return g, nil
}

// sysfsNUMA reads the NUMA node of a PCI device from sysfs. NVML writes bus
// ids with an 8-digit domain ("00000000:3B:00.0"); sysfs uses 4 digits and
// lower case.
func sysfsNUMA(busID string) int {
	id := strings.ToLower(busID)
	if i := strings.IndexByte(id, ':'); i > 4 {
		id = id[i-4:]
	}
	b, err := os.ReadFile("/sys/bus/pci/devices/" + id + "/numa_node")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func cString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
