package testenv

import "testing"

// fakeTB records how a test ended instead of ending this one.
type fakeTB struct {
	testing.TB
	failed, skipped bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }
func (f *fakeTB) Skip(...any)           { f.skipped = true }

func TestMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{}
		Missing(f, "no %s", "thing")
		if f.failed != (ci != "") || f.skipped != (ci == "") {
			t.Errorf("CI=%q: failed %v, skipped %v", ci, f.failed, f.skipped)
		}
	}
	t.Setenv("CI", "true")
	f := &fakeTB{}
	Torch(f, "/nonexistent/python3")
	if !f.failed {
		t.Error("Torch with no interpreter did not fail under CI")
	}
}
