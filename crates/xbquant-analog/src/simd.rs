//! The instruction set the tiles' kernels run with: the core's dispatcher (the best this CPU has,
//! at most the limit of `xbquant::set_max_instruction_set`; results are the same bits with each).

use xbquant::InstructionSet;

pub(crate) use xbquant::pulp_arch as arch;

/// AVX-512, when this CPU has it and the limit allows it.
#[cfg(target_arch = "x86_64")]
pub(crate) fn v4() -> Option<pulp::x86::V4> {
    if xbquant::instruction_set() == InstructionSet::Avx512 {
        pulp::x86::V4::try_new()
    } else {
        None
    }
}
