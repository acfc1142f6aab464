#!/bin/bash
# testdata/v6-dualstack: text capture of tools/dualstack.py through a private tracefs instance scoped to its pid.
set -e
OUT=${1:?usage: capture_dualstack.sh OUT.txt}
T=/sys/kernel/tracing/instances/kreq-v6cap
rmdir $T 2>/dev/null || true
mkdir $T
echo mono > $T/trace_clock
echo 4096 > $T/buffer_size_kb
python3 "$(dirname "$0")/dualstack.py" 2 &
PY=$!
sleep 0.3
echo 1 > $T/options/event-fork
echo 1 > $T/options/record-tgid
for t in $(ls /proc/$PY/task); do echo $t >> $T/set_event_pid; done
for e in sched/sched_switch sched/sched_waking sched/sched_wakeup sched/sched_wakeup_new sched/sched_process_fork sched/sched_process_exit sock/sock_send_length sock/sock_recv_length sock/inet_sock_set_state tcp/tcp_rcv_space_adjust tcp/tcp_probe tcp/tcp_destroy_sock; do echo 1 > $T/events/$e/enable; done
for sc in read write readv writev recvfrom sendto recvmsg sendmsg accept accept4 connect close epoll_wait epoll_pwait futex; do echo 1 > $T/events/syscalls/sys_enter_$sc/enable; echo 1 > $T/events/syscalls/sys_exit_$sc/enable; done
cat $T/trace_pipe > "$OUT" &
CAT=$!
echo 1 > $T/tracing_on
wait $PY
sleep 0.5
echo 0 > $T/tracing_on
sleep 0.3
kill $CAT
rmdir $T
wc -l "$OUT"
