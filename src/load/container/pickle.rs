//! A pickle reader that never imports or calls anything.
//!
//! It runs the pickle machine (protocols 0–5, the opcodes torch and numpy
//! write) over bytes and builds an inert object graph: a `GLOBAL` becomes a
//! [`Value::Global`] naming what it asked for, a `REDUCE` or `NEWOBJ` a
//! [`Value::Object`] holding the callee and its arguments, uncalled. Every
//! global is checked against the caller's allowlist the moment it is read:
//! one that is not on it (`os.system`, `builtins.eval`, …) ends the run with
//! an error that names it. The reader that asked for the pickle then gives
//! the allowed globals their meaning (see `pytorch.rs`).
//!
//! Values live in an arena and refer to each other by [`Id`], so a container
//! put in the memo and filled afterwards is the same object everywhere, as in
//! Python; the graph may share nodes or even hold cycles, so whoever walks it
//! must bound its depth. Everything is bounded here: lengths are checked
//! against the input left before anything is copied, and the stack, the memo,
//! the arena and the number of opcodes have caps.

use std::collections::HashMap;

use crate::error::one_line;

/// A node of the object graph: an index into [`Pickle::values`].
pub type Id = usize;

/// One inert value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 (its little-endian two's-complement bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key–value pairs, in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A set or frozenset's items.
    Set(Vec<Id>),
    /// `module.name`, as `GLOBAL` or `STACK_GLOBAL` asked for it (never imported).
    Global {
        module: String,
        name: String,
    },
    /// What `REDUCE`, `NEWOBJ`, `INST` or `OBJ` would have made: `callee(*args)`,
    /// never called; `items` and `list` gather what `SETITEM(S)` and
    /// `APPEND(S)` would have stored in it, `state` what `BUILD` would have set.
    Object {
        callee: Id,
        args: Id,
        items: Vec<(Id, Id)>,
        list: Vec<Id>,
        state: Option<Id>,
    },
    /// A persistent id (`BINPERSID`): a reference to data outside the pickle.
    PersistentId(Id),
}

/// A pickle, read: its object graph and the object `STOP` returned.
#[derive(Clone, Debug)]
pub struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    /// The value `id` names (`Value::None` for an id outside the arena).
    pub fn get(&self, id: Id) -> &Value {
        self.values.get(id).unwrap_or(&Value::None)
    }
}

/// Caps: far beyond what a checkpoint's `data.pkl` holds, small enough that a
/// hostile pickle cannot use much memory or time.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 22;
const MAX_VALUES: usize = 1 << 24;
const MAX_OPS: usize = 1 << 26;
/// A global's module or name (`GLOBAL` reads them as text lines).
const MAX_NAME: usize = 1024;

type Res<T> = std::result::Result<T, String>;

/// The refusal for a global not on the allowlist.
pub fn refusal(module: &str, name: &str) -> String {
    format!(
        "the pickle asks for {}.{}, which is not a tensor (refused, nothing was run)",
        one_line(module),
        one_line(name)
    )
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    allowed: &'a dyn Fn(&str, &str) -> bool,
}

/// Reads the pickle in `data`, refusing any global for which `allowed(module,
/// name)` is false.
pub fn parse(data: &[u8], allowed: &dyn Fn(&str, &str) -> bool) -> Res<Pickle> {
    let mut m = Machine {
        data,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        allowed,
    };
    for _ in 0..MAX_OPS {
        let at = m.pos;
        let op = m
            .take(1)
            .map_err(|_| "the pickle ends before its STOP opcode (truncated)".to_string())?[0];
        match m.step(op) {
            Ok(true) => {
                let root = m.pop()?;
                return Ok(Pickle {
                    values: m.values,
                    root,
                });
            }
            Ok(false) => {}
            Err(e) => return Err(format!("at byte {at} (opcode 0x{op:02x}): {e}")),
        }
    }
    Err(format!("the pickle runs more than {MAX_OPS} opcodes"))
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Res<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "needs {n} bytes but only {} are left (truncated or corrupt)",
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Res<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Res<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Res<u64> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "short read")?;
        Ok(u64::from_le_bytes(b))
    }
    /// A length read from the input, checked against what is left of it.
    fn len(&mut self, n: u64) -> Res<usize> {
        let left = self.data.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| format!("declares {n} bytes but only {left} are left"))
    }
    /// A text line (protocol 0 arguments), without its newline.
    fn line(&mut self) -> Res<&str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(MAX_NAME + 1)
            .position(|&b| b == b'\n')
            .ok_or("a text argument has no newline within 1024 bytes")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "a text argument is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }

    fn alloc(&mut self, v: Value) -> Res<Id> {
        if self.values.len() >= MAX_VALUES {
            return Err(format!("the pickle makes more than {MAX_VALUES} objects"));
        }
        self.values.push(v);
        Ok(self.values.len() - 1)
    }
    fn push_id(&mut self, id: Id) -> Res<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("the stack grows past {MAX_STACK} items"));
        }
        self.stack.push(id);
        Ok(())
    }
    fn push(&mut self, v: Value) -> Res<()> {
        let id = self.alloc(v)?;
        self.push_id(id)
    }
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn pop(&mut self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err("pops from an empty stack".into());
        }
        self.stack
            .pop()
            .ok_or_else(|| "pops from an empty stack".into())
    }
    fn top(&self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err("reads an empty stack".into());
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "reads an empty stack".into())
    }
    /// The items above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Res<Vec<Id>> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }
    fn memo_put(&mut self, key: u64) -> Res<()> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(format!("the memo grows past {MAX_MEMO} entries"));
        }
        self.memo.insert(key, id);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Res<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo entry {key} was never stored"))?;
        self.push_id(id)
    }
    fn global(&mut self, module: &str, name: &str) -> Res<Value> {
        if !(self.allowed)(module, name) {
            return Err(refusal(module, name));
        }
        Ok(Value::Global {
            module: module.to_string(),
            name: name.to_string(),
        })
    }
    fn object(&mut self, callee: Id, args: Id) -> Res<()> {
        self.push(Value::Object {
            callee,
            args,
            items: Vec::new(),
            list: Vec::new(),
            state: None,
        })
    }
    fn string(&mut self, n: u64) -> Res<()> {
        let n = self.len(n)?;
        let s = std::str::from_utf8(self.take(n)?)
            .map_err(|_| "a string is not valid UTF-8")?
            .to_string();
        self.push(Value::Str(s))
    }
    fn bytes(&mut self, n: u64) -> Res<()> {
        let n = self.len(n)?;
        let b = self.take(n)?.to_vec();
        self.push(Value::Bytes(b))
    }
    fn set_items(&mut self, target: Id, pairs: Vec<Id>) -> Res<()> {
        if !pairs.len().is_multiple_of(2) {
            return Err("SETITEMS has an odd number of items".into());
        }
        let pairs = pairs.chunks_exact(2).map(|p| (p[0], p[1]));
        match self.values.get_mut(target) {
            Some(Value::Dict(d)) | Some(Value::Object { items: d, .. }) => d.extend(pairs),
            _ => return Err("SETITEM on something that is not a dict".into()),
        }
        Ok(())
    }
    fn append(&mut self, target: Id, items: Vec<Id>) -> Res<()> {
        match self.values.get_mut(target) {
            Some(Value::List(l)) | Some(Value::Object { list: l, .. }) => l.extend(items),
            _ => return Err("APPEND on something that is not a list".into()),
        }
        Ok(())
    }
    fn add_items(&mut self, target: Id, items: Vec<Id>) -> Res<()> {
        match self.values.get_mut(target) {
            Some(Value::Set(s)) => s.extend(items),
            _ => return Err("ADDITEMS on something that is not a set".into()),
        }
        Ok(())
    }

    /// Runs one opcode; true at STOP.
    fn step(&mut self, op: u8) -> Res<bool> {
        match op {
            b'.' => return Ok(true),
            0x80 => {
                let p = self.u8()?;
                if p > 5 {
                    return Err(format!("unknown pickle protocol {p}"));
                }
            }
            0x95 => {
                // FRAME: a length hint only.
                self.u64()?;
            }
            b'(' => {
                if self.marks.len() >= MAX_STACK {
                    return Err("too many MARKs".into());
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let id = self.top()?;
                self.push_id(id)?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = self.u32()? as i32;
                self.push(Value::Int(v as i64))?
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v as i64))?
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Value::Int(v as i64))?
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    self.u8()? as u64
                } else {
                    let n = self.u32()? as i32;
                    u64::try_from(n).map_err(|_| "LONG4 with a negative length")?
                };
                let n = self.len(n)?;
                let b = self.take(n)?.to_vec();
                self.push(long(b))?
            }
            b'I' | b'L' => {
                let s = self.line()?.trim_end_matches('L').to_string();
                let v = match s.as_str() {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    s => Value::Int(
                        s.parse()
                            .map_err(|_| format!("{:?} is not an integer", one_line(s)))?,
                    ),
                };
                self.push(v)?
            }
            b'G' => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "short read")?;
                self.push(Value::Float(f64::from_be_bytes(b)))?
            }
            b'X' => {
                let n = self.u32()? as u64;
                self.string(n)?
            }
            0x8c => {
                let n = self.u8()? as u64;
                self.string(n)?
            }
            0x8d => {
                let n = self.u64()?;
                self.string(n)?
            }
            b'B' => {
                let n = self.u32()? as u64;
                self.bytes(n)?
            }
            b'C' => {
                let n = self.u8()? as u64;
                self.bytes(n)?
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                self.bytes(n)?
            }
            b'T' | b'U' => {
                // Python 2 str: bytes, read as Latin-1 text.
                let n = if op == b'T' {
                    let n = self.u32()? as i32;
                    u64::try_from(n).map_err(|_| "BINSTRING with a negative length")?
                } else {
                    self.u8()? as u64
                };
                let n = self.len(n)?;
                let s = self.take(n)?.iter().map(|&b| b as char).collect();
                self.push(Value::Str(s))?
            }
            b'}' => self.push(Value::Dict(Vec::new()))?,
            b']' => self.push(Value::List(Vec::new()))?,
            b')' => self.push(Value::Tuple(Vec::new()))?,
            0x8f => self.push(Value::Set(Vec::new()))?,
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < self.floor() + n {
                    return Err("TUPLE with too few items on the stack".into());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Value::Tuple(items))?
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items))?
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(items))?
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Value::Set(items))?
            }
            b'd' => {
                let items = self.pop_mark()?;
                let d = self.alloc(Value::Dict(Vec::new()))?;
                self.set_items(d, items)?;
                self.push_id(d)?
            }
            b'a' => {
                let v = self.pop()?;
                let l = self.top()?;
                self.append(l, vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                let l = self.top()?;
                self.append(l, items)?
            }
            0x90 => {
                let items = self.pop_mark()?;
                let s = self.top()?;
                self.add_items(s, items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.set_items(d, vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                let d = self.top()?;
                self.set_items(d, items)?
            }
            b'q' => {
                let k = self.u8()? as u64;
                self.memo_put(k)?
            }
            b'r' => {
                let k = self.u32()? as u64;
                self.memo_put(k)?
            }
            b'p' => {
                let k = self.line()?;
                let k = k.parse().map_err(|_| "PUT with a non-numeric key")?;
                self.memo_put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.u8()? as u64;
                self.memo_get(k)?
            }
            b'j' => {
                let k = self.u32()? as u64;
                self.memo_get(k)?
            }
            b'g' => {
                let k = self.line()?;
                let k = k.parse().map_err(|_| "GET with a non-numeric key")?;
                self.memo_get(k)?
            }
            b'c' | b'i' => {
                let module = self.line()?.to_string();
                let name = self.line()?.to_string();
                let g = self.global(&module, &name)?;
                if op == b'c' {
                    self.push(g)?
                } else {
                    // INST: the class, called on the items above the MARK.
                    let items = self.pop_mark()?;
                    let callee = self.alloc(g)?;
                    let args = self.alloc(Value::Tuple(items))?;
                    self.object(callee, args)?
                }
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (self.get(module), self.get(name))
                else {
                    return Err("STACK_GLOBAL on something other than two strings".into());
                };
                let (module, name) = (module.clone(), name.clone());
                let g = self.global(&module, &name)?;
                self.push(g)?
            }
            b'o' => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err("OBJ with no class".into());
                }
                let callee = items.remove(0);
                let args = self.alloc(Value::Tuple(items))?;
                self.object(callee, args)?
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callee = self.pop()?;
                self.object(callee, args)?
            }
            0x92 => {
                // NEWOBJ_EX: cls, args, kwargs; the kwargs are kept beside the args.
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let callee = self.pop()?;
                let both = self.alloc(Value::Tuple(vec![args, kwargs]))?;
                self.object(callee, both)?
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                match self.values.get_mut(target) {
                    Some(Value::Object { state: s, .. }) => *s = Some(state),
                    _ => return Err("BUILD on something that is not an object".into()),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(Value::PersistentId(pid))?
            }
            b'P' => {
                let s = self.line()?.to_string();
                let pid = self.alloc(Value::Str(s))?;
                self.push(Value::PersistentId(pid))?
            }
            0x82..=0x84 => {
                return Err("the pickle asks for an object from the copyreg extension registry (refused, nothing was run)".into())
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
        Ok(false)
    }

    fn get(&self, id: Id) -> &Value {
        self.values.get(id).unwrap_or(&Value::None)
    }
}

/// A `LONG1`/`LONG4` integer from its little-endian two's-complement bytes.
fn long(b: Vec<u8>) -> Value {
    if b.len() <= 8 {
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xFF
        } else {
            0
        };
        let mut w = [fill; 8];
        w[..b.len()].copy_from_slice(&b);
        Value::Int(i64::from_le_bytes(w))
    } else {
        Value::BigInt(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str, _: &str) -> bool {
        true
    }
    fn none(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn reads_containers_numbers_and_strings() {
        // pickle.dumps({'a': [1, -2, 300, 70000, 1.5, None, True], 'b': (b'xy', 'é')}, protocol=2)
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend_from_slice(b"X\x01\x00\x00\x00a");
        p.extend_from_slice(b"]q\x01(K\x01J\xfe\xff\xff\xffM\x2c\x01J\x70\x11\x01\x00");
        p.push(b'G');
        p.extend_from_slice(&1.5f64.to_be_bytes());
        p.extend_from_slice(b"N\x88e");
        p.extend_from_slice(b"X\x01\x00\x00\x00bC\x02xyX\x02\x00\x00\x00\xc3\xa9\x86u.");
        let pk = parse(&p, &none).unwrap();
        let Value::Dict(d) = pk.get(pk.root) else {
            panic!("not a dict")
        };
        assert_eq!(d.len(), 2);
        assert_eq!(pk.get(d[0].0), &Value::Str("a".into()));
        let Value::List(l) = pk.get(d[0].1) else {
            panic!("not a list")
        };
        let got: Vec<&Value> = l.iter().map(|&i| pk.get(i)).collect();
        assert_eq!(
            got,
            [
                &Value::Int(1),
                &Value::Int(-2),
                &Value::Int(300),
                &Value::Int(70000),
                &Value::Float(1.5),
                &Value::None,
                &Value::Bool(true)
            ]
        );
        let Value::Tuple(t) = pk.get(d[1].1) else {
            panic!("not a tuple")
        };
        assert_eq!(pk.get(t[0]), &Value::Bytes(b"xy".to_vec()));
        assert_eq!(pk.get(t[1]), &Value::Str("é".into()));
    }

    #[test]
    fn memo_shares_the_object_filled_after_it_was_stored() {
        // d = {}; [d, d] with d filled after memoization: ]( }q\x00 h\x00 e ... then fill via BINGET
        let p = b"\x80\x02](}q\x00h\x00eh\x00X\x01\x00\x00\x00kK\x07s0.";
        let pk = parse(p, &none).unwrap();
        let Value::List(l) = pk.get(pk.root) else {
            panic!()
        };
        assert_eq!(l[0], l[1]);
        let Value::Dict(d) = pk.get(l[0]) else {
            panic!()
        };
        assert_eq!(pk.get(d[0].1), &Value::Int(7));
    }

    #[test]
    fn long1_handles_signs_and_big_values() {
        let p = b"\x80\x02(\x8a\x01\xff\x8a\x02\x00\x01\x8a\x00\x8a\x09\x01\x00\x00\x00\x00\x00\x00\x00\x01t.";
        let pk = parse(p, &none).unwrap();
        let Value::Tuple(t) = pk.get(pk.root) else {
            panic!()
        };
        assert_eq!(pk.get(t[0]), &Value::Int(-1));
        assert_eq!(pk.get(t[1]), &Value::Int(256));
        assert_eq!(pk.get(t[2]), &Value::Int(0));
        assert!(matches!(pk.get(t[3]), Value::BigInt(_)));
    }

    #[test]
    fn globals_are_refused_by_name_and_never_called() {
        // pickle.dumps of a REDUCE on os.system('touch x'), protocol 2.
        let p = b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00touch xq\x01\x85q\x02Rq\x03.";
        let e = parse(p, &none).unwrap_err();
        assert!(e.contains("os.system"), "{e}");
        assert!(e.contains("refused, nothing was run"), "{e}");
        // Protocol 4's STACK_GLOBAL is checked too.
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.";
        let e = parse(p, &none).unwrap_err();
        assert!(e.contains("builtins.eval"), "{e}");
        // INST (protocol 0).
        let p = b"(X\x02\x00\x00\x00lsisubprocess\nPopen\n.";
        assert!(parse(p, &none).unwrap_err().contains("subprocess.Popen"));
        // Allowed, the call stays inert.
        let p = b"\x80\x02cos\nsystem\nX\x01\x00\x00\x00x\x85R.";
        let pk = parse(p, &all).unwrap();
        let Value::Object { callee, .. } = pk.get(pk.root) else {
            panic!()
        };
        assert_eq!(
            pk.get(*callee),
            &Value::Global {
                module: "os".into(),
                name: "system".into()
            }
        );
    }

    #[test]
    fn reduce_then_setitems_and_build_fill_the_object() {
        let p = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00aK\x01u}bq\x00.";
        let pk = parse(p, &all).unwrap();
        let Value::Object { items, state, .. } = pk.get(pk.root) else {
            panic!()
        };
        assert_eq!(items.len(), 1);
        assert!(state.is_some());
    }

    #[test]
    fn malformed_pickles_are_errors_not_panics() {
        let good = b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01(K\x01K\x02eX\x01\x00\x00\x00b\x8a\x02\x00\x01u.";
        assert!(parse(good, &all).is_ok());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut], &all).is_err());
        }
        for i in 0..good.len() {
            for x in [0x00, 0xFF, 0x7F, 0x80] {
                let mut g = good.to_vec();
                g[i] ^= x;
                let _ = parse(&g, &all);
            }
        }
        for (p, want) in [
            (&b"\x80\x02X\xff\xff\xff\xff."[..], "declares"),
            (b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "declares"),
            (b"\x80\x02h\x05.", "never stored"),
            (b"\x80\x020.", "empty stack"),
            (b"\x80\x02e.", "MARK"),
            (b"\x80\x02K\x01K\x02s.", "empty stack"),
            (b"\x80\x02]K\x01K\x02s.", "not a dict"),
            (b"\x80\x02\xf0.", "unsupported"),
            (b"\x80\x02K\x01", "STOP"),
            (b"\x80\x02(K\x01\x86.", "too few"),
            (b"\x80\x02\x82\x01.", "extension"),
        ] {
            let e = parse(p, &all).unwrap_err();
            assert!(e.contains(want), "{p:?}: {e}");
        }
    }

    #[test]
    fn a_mark_hides_the_items_below_it() {
        // Items below a MARK cannot be popped by ops above it.
        let e = parse(b"\x80\x02K\x01(0.", &all).unwrap_err();
        assert!(e.contains("empty stack"), "{e}");
    }

    #[test]
    fn caps_bound_a_pickle_that_only_grows() {
        // DUP forever: stopped by the stack cap, not by memory.
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(b'2', MAX_STACK + 10));
        p.push(b'.');
        assert!(parse(&p, &all).unwrap_err().contains("stack grows"));
    }
}
