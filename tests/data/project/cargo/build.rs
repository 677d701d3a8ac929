fn main() {
    // The cc crate runs $CC: CC="distcc cc" sends the C part to the worker.
    cc::Build::new().file("../src/greet.cpp").cpp(true).compile("greet");
    cc::Build::new().file("c/part.c").compile("part");
}
