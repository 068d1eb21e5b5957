use c1m::diagnosis::input::{Input, LineReader};
use c1m::diagnosis::parse::{fast_record, Fast};
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let mode = std::env::args().nth(2).unwrap();
    let mut lr = LineReader::new(Input::File(p.into()).open().unwrap());
    let mut n = 0u64; let mut s = 0u64;
    let t = std::time::Instant::now();
    lr.for_each_line(|l, _| { n += 1; if mode == "parse" { if let Some(Fast::Progress{conns,..}) = fast_record(l) { s = s.wrapping_add(conns); } } else { s += l.len() as u64; } }).unwrap();
    eprintln!("{n} {s} {:?}", t.elapsed());
}
