//! One test per line form kreq accepts (and a few it must reject).

use kreq_ingest::rows::{IrqContext, LostKind};
use kreq_ingest::text::line::{parse_line, Line};

use crate::{event, field, fields};

#[test]
fn trace_pipe_with_tgid_and_five_flags() {
    let e = event("         python3-24644   (  24600) [000] ..s2.  2634.491846: tcp_probe: family=AF_INET src=127.0.0.1:18080 dest=127.0.0.1:53252 mark=0x0 data_len=73");
    assert_eq!(
        (e.comm, e.tid, e.tgid, e.cpu),
        ("python3", 24644, Some(24600), 0)
    );
    assert_eq!(e.ts_ns, 2_634_491_846_000);
    assert!(e.ts_is_ns);
    let f = e.flags.expect("flags");
    assert_eq!(f.context, IrqContext::Softirq);
    assert_eq!((f.preempt_depth, f.migrate_disable), (2, Some(0)));
    assert_eq!(e.body.name.to_tracefs(), "tcp_probe");
    assert_eq!(field(&e, "src").as_deref(), Some("127.0.0.1:18080"));
    assert_eq!(field(&e, "data_len").as_deref(), Some("73"));
}

#[test]
fn unknown_tgid_dashes() {
    let e = event("          <idle>-0       (-------) [000] d..2.  2628.158669: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=bash next_pid=24423 next_prio=120");
    assert_eq!((e.comm, e.tid, e.tgid), ("<idle>", 0, None));
    let f = e.flags.expect("flags");
    assert!(f.irqs_off && !f.bh_off && !f.need_resched);
}

#[test]
fn without_tgid_column() {
    let e = event("           nginx-24541 [001] .....  2634.491944: sys_recvfrom(fd: 0xb, ubuf: 0x55ebdf73f1c0, size: 0x400, flags: 0, addr: 0, addr_len: 0)");
    assert_eq!((e.comm, e.tid, e.tgid, e.cpu), ("nginx", 24541, None, 1));
    assert_eq!(e.body.name.to_tracefs(), "sys_enter_recvfrom");
    assert_eq!(field(&e, "fd").as_deref(), Some("0xb"));
    assert_eq!(field(&e, "addr_len").as_deref(), Some("0"));
}

#[test]
fn four_character_flags_of_older_kernels() {
    let e = event("          <idle>-0     [001] dNh1  1234.567890: sched_wakeup: comm=a pid=7 prio=120 target_cpu=001");
    let f = e.flags.expect("flags");
    assert!(f.irqs_off && f.need_resched);
    assert_eq!(f.context, IrqContext::Hardirq);
    assert_eq!((f.preempt_depth, f.migrate_disable), (1, None));
}

#[test]
fn bh_off_and_both_flags() {
    let b = event("          python3-1 [000] b.... 1.000001: net_dev_xmit: dev=lo skbaddr=00000000dacb040a len=74 rc=0");
    assert!(b.flags.is_some_and(|f| f.bh_off && !f.irqs_off));
    let d = event("          python3-1 [000] DnZfa 1.000001: x: a=1");
    let f = d.flags.expect("flags");
    assert!(f.bh_off && f.irqs_off && f.need_resched);
    assert_eq!(f.context, IrqContext::NmiInHardirq);
    assert_eq!((f.preempt_depth, f.migrate_disable), (15, Some(10)));
}

#[test]
fn no_flags_trace_cmd_style() {
    let e = event("            bash-598   [001]  3537.834348: sys_exit_write:       0x2");
    assert_eq!((e.comm, e.tid, e.flags), ("bash", 598, None));
    assert_eq!(e.body.name.to_tracefs(), "sys_exit_write");
    assert_eq!(fields(&e), vec![("ret".into(), "0x2".into())]);
}

#[test]
fn trace_cmd_instance_prefix_and_padded_name() {
    let e = event("tcmd_598:          python3-673   [000]  3537.835549: sys_enter_read:       fd: 0x00000003, buf: 0x7fff9f33a2a8, count: 0x00000340");
    assert_eq!((e.comm, e.tid, e.cpu), ("python3", 673, 0));
    assert_eq!(e.ts_ns, 3_537_835_549_000);
    assert_eq!(e.body.name.to_tracefs(), "sys_enter_read");
    assert_eq!(field(&e, "count").as_deref(), Some("0x00000340"));
}

#[test]
fn counter_clock_timestamp() {
    let e = event("            bash-1  [000] ..... 123456789012: sys_close -> 0x0");
    assert_eq!(e.ts_ns, 123_456_789_012);
    assert!(!e.ts_is_ns);
}

#[test]
fn nanosecond_precision_timestamp() {
    let e = event("            bash-1  [000] ..... 12.123456789: x: a=1");
    assert_eq!(e.ts_ns, 12_123_456_789);
}

#[test]
fn comm_with_spaces_dashes_and_brackets() {
    let e = event("    a-b c-99 [x]-13055   ( 13000) [001] ..... 10.000001: sched_process_exit: comm=a-b c-99 [x] pid=13055 prio=120 group_dead=true");
    assert_eq!(
        (e.comm, e.tid, e.tgid),
        ("a-b c-99 [x]", 13055, Some(13000))
    );
    assert_eq!(field(&e, "comm").as_deref(), Some("a-b c-99 [x]"));
    let e = event("      opt cgu.02-13003   ( 13000) [001] ..... 10.000002: sys_close -> 0x0");
    assert_eq!(e.comm, "opt cgu.02");
}

#[test]
fn unknown_comm_placeholder() {
    let e = event("           <...>-24600   (  24600) [000] ..... 2634.491151: sys_connect -> 0x0");
    assert_eq!((e.comm, e.tid), ("<...>", 24600));
}

#[test]
fn narrow_pid_and_long_pid() {
    let e = event("            bash-5     [000] .... 1.000001: x: a=1");
    assert_eq!(e.tid, 5);
    let e = event("            bash-4194303 [000] .... 1.000001: x: a=1");
    assert_eq!(e.tid, 4_194_303);
}

#[test]
fn sched_switch_next_comm_with_space_survives() {
    let e = event("          <idle>-0       [001] d..2.  1.000001: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R+ ==> next_comm=opt cgu.02 next_pid=13003 next_prio=120");
    assert_eq!(field(&e, "next_comm").as_deref(), Some("opt cgu.02"));
    assert_eq!(field(&e, "prev_state").as_deref(), Some("R+"));
    assert_eq!(field(&e, "next_pid").as_deref(), Some("13003"));
    assert_eq!(fields(&e).len(), 7);
}

/// Kernels before 4.x print `success=` between `prio=` and `target_cpu=` (captures
/// `tcinc_trace-android-sched.txt` and `lisa_trace_txt_trace.txt` in the shared corpus): a
/// field the template lacks is a field of its own, not the end of `prio`'s value; a task name
/// with spaces and `=` still ends only at ` pid=`.
#[test]
fn fields_an_older_format_adds_are_fields_of_their_own() {
    let e = event("              sh-12958 [002] d.H5 365761.623995: sched_wakeup: comm=rcu_preempt pid=8 prio=120 success=1 target_cpu=002");
    assert_eq!(field(&e, "prio").as_deref(), Some("120"));
    assert_eq!(field(&e, "success").as_deref(), Some("1"));
    assert_eq!(field(&e, "target_cpu").as_deref(), Some("002"));
    let e = event("          <idle>-0     [002]    76.211513: sched_wakeup:          comm=a b=c pid=1642 prio=120 success=1 target_cpu=2");
    assert_eq!(field(&e, "comm").as_deref(), Some("a b=c"));
    assert_eq!(field(&e, "pid").as_deref(), Some("1642"));
    assert_eq!(field(&e, "prio").as_deref(), Some("120"));
    assert_eq!(field(&e, "success").as_deref(), Some("1"));
}

/// Catapult's `*_jsstring` systraces hold the trace in a JavaScript string: every line ends
/// with `\n\`, which is not part of the last field.
#[test]
fn javascript_string_line_continuations_are_not_part_of_the_event() {
    let e = event(
        r"     kworker/0:0-13696 [000] 50260.647590: sched_wakeup: comm=mmcqd/0 pid=95 prio=120 success=1 target_cpu=000\n\",
    );
    assert_eq!(field(&e, "target_cpu").as_deref(), Some("000"));
    assert_eq!(field(&e, "comm").as_deref(), Some("mmcqd/0"));
}

#[test]
fn trace_cmd_scheduler_plugin_forms() {
    let s = event("tcmd_598:             bash-598   [001]  3537.834693: sched_switch:         bash:598 [120] S ==> opt cgu.02:673 [120]");
    assert_eq!(field(&s, "prev_pid").as_deref(), Some("598"));
    assert_eq!(field(&s, "prev_state").as_deref(), Some("S"));
    assert_eq!(field(&s, "next_comm").as_deref(), Some("opt cgu.02"));
    assert_eq!(field(&s, "next_pid").as_deref(), Some("673"));
    let w = event("tcmd_598:          python3-673   [001]  3537.834823: sched_wakeup:         migration/1:21 [0] CPU:001");
    assert_eq!(field(&w, "comm").as_deref(), Some("migration/1"));
    assert_eq!(field(&w, "pid").as_deref(), Some("21"));
    assert_eq!(field(&w, "target_cpu").as_deref(), Some("001"));
}

#[test]
fn syscall_enter_and_exit_bodies() {
    let e = event("         python3-24423   (  24423) [000] .....  2628.159647: sys_read(fd: 3, buf: 0x7fffaf98f428, count: 0x340)");
    assert_eq!(e.body.name.to_tracefs(), "sys_enter_read");
    assert_eq!(fields(&e).len(), 3);
    let x = event("         python3-24423   (  24423) [000] .....  2628.159649: sys_read -> 0xfffffffffffffff5");
    assert_eq!(x.body.name.to_tracefs(), "sys_exit_read");
    assert_eq!(field(&x, "ret").as_deref(), Some("0xfffffffffffffff5"));
    let n = event("            bash-1  [000] ..... 1.000001: sys_sched_yield()");
    assert_eq!(n.body.name.to_tracefs(), "sys_enter_sched_yield");
    assert!(fields(&n).is_empty());
}

#[test]
fn spaced_key_format_of_sock_length() {
    let e = event("         python3-24644   (  24600) [000] .....  2634.491884: sock_send_length: sk address = 00000000a5bfb41f, family = AF_INET protocol = IPPROTO_TCP, length = 73, error = 0, flags = 0x0");
    assert_eq!(field(&e, "sk").as_deref(), Some("00000000a5bfb41f"));
    assert_eq!(field(&e, "protocol").as_deref(), Some("IPPROTO_TCP"));
    assert_eq!(field(&e, "length").as_deref(), Some("73"));
    assert_eq!(field(&e, "flags").as_deref(), Some("0x0"));
}

#[test]
fn never_seen_event_keeps_all_fields() {
    let e = event("            kworker-9 [001] ..... 5.000001: block_rq_issue: dev=8,0 op=WS rwbs=WS bytes=4096 comm=jbd2/sda1-8");
    assert_eq!(e.body.name.to_tracefs(), "block_rq_issue");
    let f = fields(&e);
    assert_eq!(f.len(), 5, "{f:?}");
    assert_eq!(field(&e, "dev").as_deref(), Some("8,0"));
    let t = event("            bash-1  [000] ..... 1.000001: tracing_mark_write: req 42 start");
    assert_eq!(field(&t, "buf").as_deref(), Some("req 42 start"));
    let u = event("            bash-1  [000] ..... 1.000001: page_fault_user: address=0x7f ip=0x55 error_code=0x6");
    assert_eq!(fields(&u).len(), 3);
}

#[test]
fn function_tracer_and_unparsed_bodies() {
    let f = event("            bash-1  [000] ..... 1.000001: do_sys_open <-__x64_sys_openat");
    assert_eq!(f.body.name.to_tracefs(), "function");
    assert_eq!(field(&f, "parent_ip").as_deref(), Some("__x64_sys_openat"));
    let u = event("            bash-1  [000] ..... 1.000001: <stack trace>");
    assert_eq!(u.body.name.to_tracefs(), "unparsed");
    assert_eq!(field(&u, "payload").as_deref(), Some("<stack trace>"));
}

#[test]
fn lost_and_dropped_reports() {
    assert_eq!(
        parse_line("CPU:1 [LOST 42 EVENTS]"),
        Line::Lost {
            cpu: 1,
            count: Some(42),
            kind: LostKind::Lost
        }
    );
    assert_eq!(
        parse_line("CPU:0 [17 EVENTS DROPPED]"),
        Line::Lost {
            cpu: 0,
            count: Some(17),
            kind: LostKind::Dropped
        }
    );
}

#[test]
fn header_lines_are_ignored() {
    for l in [
        "# tracer: nop",
        "#",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "cpus=2",
        "##### CPU 1 buffer started ####",
        "",
        "   ",
    ] {
        assert_eq!(parse_line(l), Line::Ignored, "{l:?}");
    }
}

#[test]
fn malformed_lines_say_why() {
    for l in [
        "hello world",
        "            bash-1  [000] ..... no-timestamp-here",
        "            bash-1  [0x0] ..... 1.0: x: a=1",
        "            bash-99999999999 [000] ..... 1.0: x",
        "            bash-1  [000] ..!.. 1.0: x: a=1",
        "CPU:x [LOST 1 EVENTS]",
    ] {
        assert!(
            matches!(parse_line(l), Line::Malformed(_)),
            "{l:?} -> {:?}",
            parse_line(l)
        );
    }
}

#[test]
fn crlf_line_endings() {
    let e = event("            bash-1  [000] ..... 1.000001: sys_close -> 0x0\r");
    assert_eq!(field(&e, "ret").as_deref(), Some("0x0"));
}

/// Perfetto's atrace test inputs (`perfetto_difftests_inline.extracted.systrace`) join the
/// flags to the timestamp; the flags are the first 4 characters when a timestamp follows.
#[test]
fn flags_joined_to_the_timestamp() {
    let e = event("kworker/u16:1-77    (   77) [004] ....316.196720: tracing_mark_write: B|77|no_gap_after_dots");
    assert_eq!((e.comm, e.tid, e.cpu), ("kworker/u16:1", 77, 4));
    assert_eq!(e.ts_ns, 316_196_720_000);
    let e = event("test-process-123    (  123) [002] d...316.196740: tracing_mark_write: B|123|x");
    assert_eq!(e.ts_ns, 316_196_740_000);
    assert!(e.flags.expect("flags").irqs_off);
}

/// `trace-cmd report` starts with `version = 6` and lists `CPU N is empty` (trappy's and
/// LISA's text traces); neither is an event nor malformed.
#[test]
fn trace_cmd_report_header_lines_are_ignored() {
    for l in ["version = 6", "CPU 0 is empty", "CPU 12 is empty", "cpus=4"] {
        assert_eq!(parse_line(l), Line::Ignored, "{l}");
    }
    assert!(matches!(parse_line("version = six"), Line::Malformed(_)));
}

/// A print whose message holds newlines (`perfetto_bad_print.systrace`) goes on over the
/// lines after it; they join its payload instead of counting as malformed. A line that is
/// not an event after an event with named fields is still malformed.
#[test]
fn a_print_message_continues_over_the_lines_after_it() {
    let text = "           <...>-882   (  882) [003] .... 10852.771186: event: event: abc xyz =0x34 clk id = 019\n\
                some = 000, other = 0x4\n\
                xyz = 0x0 abc = 0x0\n  surfaceflinger-598   (  598) [004] .... 10852.771242: tracing_mark_write: B|598|some event\n\
                <idle>-0 [000] d..2. 10852.771300: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b next_pid=2 next_prio=120\n\
                not an event\n";
    let pos = kreq_ingest::text::chunk::ChunkPos {
        first_line: 1,
        offset: 0,
    };
    let parsed = kreq_ingest::text::chunk::parse_chunk(text.as_bytes(), pos).expect("parse");
    assert_eq!(parsed.events.num_rows(), 3);
    assert_eq!(parsed.lines, 6);
    assert_eq!(parsed.malformed_count, 1, "{:?}", parsed.malformed);
    assert_eq!(
        parsed.malformed[0].line, 6,
        "line numbers count the joined lines"
    );
    let fields = parsed.events.column_by_name("fields").expect("fields");
    let shown = arrow::util::display::ArrayFormatter::try_new(
        fields.as_ref(),
        &arrow::util::display::FormatOptions::default(),
    )
    .expect("fmt")
    .value(0)
    .to_string();
    assert!(
        shown.contains("clk id = 019\nsome = 000, other = 0x4\nxyz = 0x0 abc = 0x0"),
        "{shown}"
    );
}
