//! tracefs `format` files: event ids, field layouts, and the ring-buffer page header.

/// How a field's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A scalar of `size` bytes.
    Int,
    /// A fixed array (`char comm[16]`, `__u8 saddr[28]`).
    Array,
    /// `__data_loc`: u32 `len << 16 | offset` from the record start.
    DataLoc,
    /// `__rel_loc`: like `DataLoc`, offset relative to the end of the field.
    RelLoc,
}

/// One field of an event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFormat {
    /// Field name.
    pub name: String,
    /// C type as written (`pid_t`, `const void *`, `char[]`, ...).
    pub ctype: String,
    /// Byte offset in the record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Signed integer.
    pub signed: bool,
    /// Layout.
    pub kind: FieldKind,
    /// How values are rendered, decided once from the type and name.
    pub render: Render,
}

/// How a field's value is decoded and shown (see [`crate::binary::decode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Integer, decimal.
    Int,
    /// Pointer, hex.
    Pointer,
    /// Text up to the first NUL.
    Text,
    /// `sockaddr_in`/`sockaddr_in6` bytes: an endpoint (`src`/`dest`).
    SockAddr,
    /// 4 bytes of IPv4 address.
    Ipv4,
    /// 16 bytes of IPv6 address.
    Ipv6,
    /// `family` / `protocol` / TCP state number with a known name.
    Symbol,
    /// `sched_switch` `prev_state`.
    TaskState,
    /// `sock_*_length` `ret`: split into `length` and `error` as its print format does.
    SockRet,
    /// Other bytes, hex.
    Bytes,
}

impl FieldFormat {
    /// A `char` array or string: rendered as text.
    pub fn is_text(&self) -> bool {
        self.ctype.starts_with("char") || self.ctype.contains(" char")
    }

    /// A pointer (`void *`, `struct sock *`): rendered in hex.
    pub fn is_pointer(&self) -> bool {
        self.ctype.contains('*')
    }
}

/// The format of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    /// tracefs system (`sched`, `syscalls`, ...), when known.
    pub system: String,
    /// Event name.
    pub name: String,
    /// `common_type` value of its records.
    pub id: u16,
    /// Fields after the common ones, in record order.
    pub fields: Vec<FieldFormat>,
    /// The `print fmt` line, kept for reference.
    pub print_fmt: String,
}

impl EventFormat {
    /// The `{ value, "name" }` pairs of `__print_flags`/`__print_symbolic` in the print
    /// format, in order (for `sched_switch`, the task-state letters of this kernel).
    pub fn print_symbols(&self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut rest = self.print_fmt.as_str();
        while let Some(i) = rest.find("{ ") {
            rest = &rest[i + 2..];
            let Some((num, tail)) = rest.split_once(',') else {
                break;
            };
            let num = num.trim();
            let value = match num.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => num.parse().ok(),
            };
            let tail = tail.trim_start();
            if let (Some(v), Some(t)) = (value, tail.strip_prefix('"')) {
                if let Some(end) = t.find('"') {
                    out.push((v, t[..end].to_owned()));
                }
            }
        }
        out
    }
}

/// Why a format file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format file of {event}: {reason}")]
pub struct FormatError {
    /// Event (or `header_page`).
    pub event: String,
    /// What was wrong.
    pub reason: String,
}

fn err(event: &str, reason: impl Into<String>) -> FormatError {
    FormatError {
        event: event.to_owned(),
        reason: reason.into(),
    }
}

/// Parse the `field:` lines of a format file (common fields included).
pub fn parse_fields(text: &str, event: &str) -> Result<Vec<FieldFormat>, FormatError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut decl = "";
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in rest.split(';') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse().ok();
            } else if let Some(v) = part.strip_prefix("signed:") {
                signed = v.trim() == "1";
            } else if decl.is_empty() && !part.is_empty() {
                decl = part;
            }
        }
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(err(
                event,
                format!("field line without offset/size: {line}"),
            ));
        };
        let (ctype, mut name) = decl
            .rsplit_once([' ', '*'])
            .map(|(t, n)| (t.trim(), n.trim()))
            .ok_or_else(|| err(event, format!("bad field declaration: {decl}")))?;
        let mut ctype = ctype.to_owned();
        if decl[..decl.len() - name.len()].ends_with('*') {
            ctype.push_str(" *");
        }
        let mut kind = FieldKind::Int;
        if let Some(i) = name.find('[') {
            name = &name[..i];
            kind = FieldKind::Array;
        }
        if size == 0 {
            // `char buf;` of size 0: older kernels' way to declare a flexible array that runs
            // to the end of the record (`print` in `lisa_example_rtapp_trace.dat`).
            kind = FieldKind::Array;
        }
        if ctype.starts_with("__data_loc") {
            kind = FieldKind::DataLoc;
        } else if ctype.starts_with("__rel_loc") {
            kind = FieldKind::RelLoc;
        }
        let mut f = FieldFormat {
            name: name.to_owned(),
            ctype,
            offset,
            size,
            signed,
            kind,
            render: Render::Int,
        };
        f.render = render_of(&f);
        out.push(f);
    }
    Ok(out)
}

fn render_of(f: &FieldFormat) -> Render {
    let name = f.name.as_str();
    match f.kind {
        FieldKind::DataLoc | FieldKind::RelLoc if f.is_text() => Render::Text,
        FieldKind::DataLoc | FieldKind::RelLoc => Render::Bytes,
        FieldKind::Array if f.is_text() => Render::Text,
        FieldKind::Array if f.size >= 16 && matches!(name, "saddr" | "daddr") => Render::SockAddr,
        FieldKind::Array if f.size == 4 && name.ends_with("addr") => Render::Ipv4,
        FieldKind::Array
            if f.size == 16 && (name.ends_with("addr_v6") || name.ends_with("addrv6")) =>
        {
            Render::Ipv6
        }
        FieldKind::Array => Render::Bytes,
        FieldKind::Int if name == "prev_state" => Render::TaskState,
        FieldKind::Int if f.is_pointer() => Render::Pointer,
        FieldKind::Int if matches!(name, "family" | "protocol" | "oldstate" | "newstate") => {
            Render::Symbol
        }
        FieldKind::Int => Render::Int,
    }
}

/// Parse a whole `events/SYSTEM/NAME/format` file.
pub fn parse_event_format(text: &str, system: &str) -> Result<EventFormat, FormatError> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
    };
    let name = value("name:").ok_or_else(|| err(system, "no name: line"))?;
    let id = value("ID:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(&name, "no numeric ID: line"))?;
    let mut fields: Vec<FieldFormat> = parse_fields(text, &name)?
        .into_iter()
        .filter(|f| !f.name.starts_with("common_"))
        .collect();
    if name == "sock_send_length" || name == "sock_recv_length" {
        for f in fields.iter_mut().filter(|f| f.name == "ret") {
            f.render = Render::SockRet;
        }
    }
    Ok(EventFormat {
        system: system.to_owned(),
        name,
        id,
        fields,
        print_fmt: value("print fmt:").unwrap_or_default(),
    })
}

/// Layout of a ring-buffer page, from `events/header_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// Offset of the u64 page timestamp.
    pub timestamp_offset: usize,
    /// Offset and size of the `commit` word (data length and missed-event flags).
    pub commit_offset: usize,
    /// Size of `commit`: the kernel's long.
    pub commit_size: usize,
    /// Offset where event data starts.
    pub data_offset: usize,
}

impl PageHeader {
    /// Parse `header_page`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let fields = parse_fields(text, "header_page")?;
        let get = |n: &str| {
            fields
                .iter()
                .find(|f| f.name == n)
                .ok_or_else(|| err("header_page", format!("no {n} field")))
        };
        let commit = get("commit")?;
        Ok(Self {
            timestamp_offset: get("timestamp")?.offset,
            commit_offset: commit.offset,
            commit_size: commit.size,
            data_offset: get("data")?.offset,
        })
    }
}

impl Default for PageHeader {
    /// The 64-bit layout (timestamp at 0, 8-byte commit at 8, data at 16).
    fn default() -> Self {
        Self {
            timestamp_offset: 0,
            commit_offset: 8,
            commit_size: 8,
            data_offset: 16,
        }
    }
}

/// Event formats by id: a dense table indexed by id, since every record looks its format
/// up (a kernel has a few thousand event ids at most).
#[derive(Debug, Clone, Default)]
pub struct FormatRegistry {
    formats: Vec<EventFormat>,
    /// Per id, 1 + the index of its format in `formats` (0: no format).
    by_id: Vec<u32>,
}

impl FormatRegistry {
    /// Add a format (a later one with the same id replaces it).
    pub fn insert(&mut self, f: EventFormat) {
        let id = usize::from(f.id);
        if self.by_id.len() <= id {
            self.by_id.resize(id + 1, 0);
        }
        match self.by_id[id] {
            0 => {
                self.formats.push(f);
                self.by_id[id] = self.formats.len() as u32;
            }
            at => self.formats[at as usize - 1] = f,
        }
    }

    /// Format of `common_type` `id`.
    pub fn get(&self, id: u16) -> Option<&EventFormat> {
        let at = *self.by_id.get(usize::from(id))?;
        self.formats.get((at as usize).checked_sub(1)?)
    }

    /// All formats, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &EventFormat> {
        self.formats.iter()
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.formats.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }
}
