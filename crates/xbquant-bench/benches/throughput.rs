//! `cargo bench -p xbquant-bench`: the kernels against a plain copy (see the crate docs).
//! `-- --quick` runs fewer repetitions and sizes; `-- --only TEXT` only the paths whose name
//! contains TEXT; `-- --isa avx2` limits the kernels to AVX2 (or `baseline`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    if let Some(i) = args.iter().position(|a| a == "--isa") {
        let name = args.get(i + 1).map_or("", String::as_str);
        match xbquant_bench::parse_isa(name) {
            Ok(isa) => xbquant::set_max_instruction_set(isa),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
    xbquant_bench::run(quick, filter);
}
