//! The body of an event line: event name and fields.
//!
//! Fields are split using the literal separators of the event's print format where kreq knows
//! it ([`crate::text::formats`]), so values with spaces (`next_comm=opt cgu.02`) survive; unknown
//! events fall back to `key=value` splitting at ` key=` boundaries, or `key: value, ...` lists.
//! Splitting is lazy: [`Body::fields`] fills a caller-owned buffer, so parsing allocates nothing.

use crate::text::formats::{self, Template};

/// Event name as it appears, normalised to tracefs names by [`EventName::write_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName<'a> {
    /// `name: payload` bodies (and trace-cmd's `sys_enter_read:`).
    Plain(&'a str),
    /// trace_pipe's `sys_read(...)`: the syscall name without `sys_`.
    SysEnter(&'a str),
    /// trace_pipe's `sys_read -> 0x1`: the syscall name without `sys_`.
    SysExit(&'a str),
}

impl EventName<'_> {
    /// The tracefs event name (`sys_enter_read`, `sched_switch`, ...).
    pub fn write_to(&self, out: &mut String) {
        match self {
            EventName::Plain(n) => out.push_str(n),
            EventName::SysEnter(n) => {
                out.push_str("sys_enter_");
                out.push_str(n);
            }
            EventName::SysExit(n) => {
                out.push_str("sys_exit_");
                out.push_str(n);
            }
        }
    }

    /// The tracefs event name as a new string.
    pub fn to_tracefs(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }
}

/// How the payload is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `fd: 3, buf: 0x7f.., count: 0xfff`
    ColonList,
    /// A single value, stored as `ret` (syscall exit).
    Ret,
    /// A known print format.
    Template(&'static Template),
    /// trace-cmd's sched_switch plugin: `a:1 [120] S ==> b:2 [120]`.
    SwitchPlugin,
    /// trace-cmd's sched_wakeup plugin: `a:1 [120] CPU:001`.
    WakeupPlugin,
    /// `key=value key=value`.
    KeyValue,
    /// Function tracer: `func <-parent`.
    Function,
    /// Anything else: one field named `payload`.
    Text,
}

/// An event body: name plus payload still to be split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body<'a> {
    /// Event name.
    pub name: EventName<'a>,
    /// Layout of the payload when the syntax alone decides it; None for `name: payload`
    /// bodies, whose layout depends on the event's print format.
    pub shape: Option<Shape>,
    /// Payload text.
    pub payload: &'a str,
}

/// Name given to bodies that start with no event name at all.
pub const UNPARSED_EVENT: &str = "unparsed";

/// Classify a body (text after the timestamp's `: `).
pub fn parse_body(body: &str) -> Body<'_> {
    let b = body.as_bytes();
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let name = &body[..n];
    let rest = &body[n..];
    if n > 0 {
        if let Some(sys) = name.strip_prefix("sys_") {
            if let Some(args) = rest.strip_prefix('(') {
                let args = args.strip_suffix(')').unwrap_or(args);
                return body_of(EventName::SysEnter(sys), Some(Shape::ColonList), args);
            }
            if let Some(ret) = rest.strip_prefix(" -> ") {
                return body_of(EventName::SysExit(sys), Some(Shape::Ret), ret.trim());
            }
        }
        if let Some(payload) = rest.strip_prefix(':') {
            let payload = payload.trim_start_matches(' ');
            return body_of(EventName::Plain(name), None, payload);
        }
        if rest.starts_with(" <-") {
            return body_of(EventName::Plain("function"), Some(Shape::Function), body);
        }
    }
    body_of(EventName::Plain(UNPARSED_EVENT), Some(Shape::Text), body)
}

fn body_of<'a>(name: EventName<'a>, shape: Option<Shape>, payload: &'a str) -> Body<'a> {
    Body {
        name,
        shape,
        payload,
    }
}

impl<'a> Body<'a> {
    /// Append `(field, value)` pairs to `out` (which is not cleared).
    pub fn fields(&self, out: &mut Vec<(&'a str, &'a str)>) {
        let template = match self.name {
            EventName::Plain(n) if self.shape.is_none() => formats::template(n),
            _ => None,
        };
        self.fields_with(template, out);
    }

    /// [`Body::fields`] with the event's template already looked up (callers cache it per
    /// event name; it must be `formats::template` of this body's name).
    pub fn fields_with(
        &self,
        template: Option<&'static Template>,
        out: &mut Vec<(&'a str, &'a str)>,
    ) {
        let p = self.payload;
        let shape = match (self.shape, self.name) {
            (Some(s), _) => s,
            (None, EventName::Plain(n)) => shape_for(n, template, p),
            (None, _) => generic_shape(p),
        };
        match shape {
            Shape::ColonList => split_colon_list(p, out),
            Shape::Ret => out.push(("ret", p)),
            Shape::Template(t) => {
                let start = out.len();
                if !formats::split_template(p, t, out) {
                    out.truncate(start);
                    split_generic(p, out);
                }
            }
            Shape::SwitchPlugin => {
                let start = out.len();
                if !formats::split_switch_plugin(p, out) {
                    out.truncate(start);
                    split_generic(p, out);
                }
            }
            Shape::WakeupPlugin => {
                let start = out.len();
                if !formats::split_wakeup_plugin(p, out) {
                    out.truncate(start);
                    split_generic(p, out);
                }
            }
            Shape::KeyValue => split_key_value(p, out),
            Shape::Function => match p.split_once(" <-") {
                Some((ip, parent)) => {
                    out.push(("ip", ip));
                    out.push(("parent_ip", parent));
                }
                None => out.push(("payload", p)),
            },
            Shape::Text => {
                if !p.is_empty() {
                    out.push(("payload", p));
                }
            }
        }
    }
}

fn shape_for(name: &str, template: Option<&'static Template>, payload: &str) -> Shape {
    if let Some(t) = template {
        if formats::is_plugin_form(name, payload) {
            return if name == "sched_switch" {
                Shape::SwitchPlugin
            } else {
                Shape::WakeupPlugin
            };
        }
        return Shape::Template(t);
    }
    if name.starts_with("sys_enter_") {
        return Shape::ColonList;
    }
    if name.starts_with("sys_exit_") && !payload.contains([' ', '=']) {
        return Shape::Ret;
    }
    generic_shape(payload)
}

fn generic_shape(payload: &str) -> Shape {
    if payload.contains('=') {
        Shape::KeyValue
    } else if payload.contains(": ") {
        Shape::ColonList
    } else {
        Shape::Text
    }
}

fn split_generic<'a>(p: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match generic_shape(p) {
        Shape::KeyValue => split_key_value(p, out),
        Shape::ColonList => split_colon_list(p, out),
        _ => {
            if !p.is_empty() {
                out.push(("payload", p));
            }
        }
    }
}

/// `fd: 3, buf: 0x7f, count: 0xfff`. A piece without `: ` is appended to the previous value.
pub(crate) fn split_colon_list<'a>(p: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    let start = out.len();
    let mut value_start = None::<(usize, &'a str)>;
    let mut pos = 0;
    let bytes = p.as_bytes();
    while pos < p.len() {
        let end = formats::find(&bytes[pos..], b", ").map_or(p.len(), |i| pos + i);
        let piece = &p[pos..end];
        match piece.split_once(": ") {
            Some((k, _)) if is_ident(k.trim()) => {
                if let Some((vs, key)) = value_start.take() {
                    out.push((key, p[vs..pos.saturating_sub(2)].trim()));
                }
                value_start = Some((pos + k.len() + 2, k.trim()));
            }
            _ if value_start.is_none() => {
                value_start = Some((pos, "payload"));
            }
            _ => {}
        }
        pos = end + 2;
    }
    if let Some((vs, key)) = value_start {
        out.push((key, p[vs.min(p.len())..].trim()));
    }
    if out.len() == start && !p.is_empty() {
        out.push(("payload", p));
    }
}

/// `key=value key=value`: a key starts at the beginning or after a space or comma and runs
/// over identifier characters to an `=`. Text before the first key becomes field `text`.
pub(crate) fn split_key_value<'a>(p: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    let b = p.as_bytes();
    let mut prev: Option<(&'a str, usize)> = None; // key, value start
    for eq in memchr::memchr_iter(b'=', b) {
        let mut ks = eq;
        while ks > 0 && (b[ks - 1].is_ascii_alphanumeric() || b[ks - 1] == b'_') {
            ks -= 1;
        }
        if ks == eq || !(ks == 0 || b[ks - 1] == b' ' || b[ks - 1] == b',') {
            continue;
        }
        if let Some((key, vs)) = prev {
            out.push((key, trim_value(&p[vs..ks])));
        } else {
            let text = trim_value(&p[..ks]);
            if !text.is_empty() {
                out.push(("text", text));
            }
        }
        prev = Some((&p[ks..eq], eq + 1));
    }
    match prev {
        Some((key, vs)) => out.push((key, trim_value(&p[vs..]))),
        None => {
            if !p.is_empty() {
                out.push(("payload", p));
            }
        }
    }
}

fn trim_value(v: &str) -> &str {
    v.trim_end_matches([' ', ',']).trim_start_matches(' ')
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b' ')
}
