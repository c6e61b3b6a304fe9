package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TicksPerSecond is the unit of [CPUTicks]: USER_HZ, 100 on Linux.
const TicksPerSecond = 100

// CPUTicks reads CPU time from /proc for benchmarks that report what a
// request costs. For pid > 0 it returns the process's user + system time in
// ticks (total 0). For pid 0 it returns the whole machine: busy, the time
// spent on anything but idle, I/O wait and steal (time the hypervisor gave
// to other machines, which is not this machine's work), and total, every
// tick. Both are 0 when /proc cannot be read.
func CPUTicks(pid int) (busy, total int64) {
	if pid == 0 {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		// cpu user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		fields := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
		for i, f := range fields {
			if i > 7 {
				break
			}
			v, _ := strconv.ParseInt(f, 10, 64)
			total += v
			if i != 3 && i != 4 && i != 7 {
				busy += v
			}
		}
		return busy, total
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime, 0
}
