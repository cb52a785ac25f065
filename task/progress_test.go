package task_test

import (
	"reflect"
	"testing"

	"github.com/mooring-dev/mooring/task"
)

// TestProgressOutsideRunner: a zero Progress records reports in memory for
// a caller to read; End leaves completed reports as they are; a nil
// Progress records nothing and does not panic.
func TestProgressOutsideRunner(t *testing.T) {
	p := &task.Progress{}
	tags := p.Report("tags", "Tags", 2)
	tags.Add(2)
	tags.Complete()
	blobs := p.Report("blobs", "Blobs", 5)
	blobs.Increment()
	reports := p.Reports()
	tags.End(task.StateFailed)
	blobs.End(task.StateFailed)
	want := []task.ProgressReport{
		{Code: "tags", Message: "Tags", State: task.StateCompleted, Total: 2, Done: 2},
		{Code: "blobs", Message: "Blobs", State: task.StateFailed, Total: 5, Done: 1},
	}
	if got := p.Reports(); !reflect.DeepEqual(got, want) {
		t.Errorf("reports %+v, want %+v", got, want)
	}
	if reports[1].State != task.StateRunning {
		t.Errorf("an earlier snapshot changed: %+v", reports[1])
	}

	var none *task.Progress
	r := none.Report("tags", "Tags", 1)
	r.Increment()
	r.End(task.StateFailed)
	r.Complete()
	none.Created("/somewhere/")
	if r != nil || none.Reports() != nil {
		t.Errorf("a nil Progress recorded %v", none.Reports())
	}
}
