extern "C" {
    fn part() -> i32;
}

fn main() {
    // SAFETY: part() is the C function build.rs compiles; it takes nothing.
    println!("{}", unsafe { part() });
}
