//! The `pulp` dispatcher of the kernels: the widest vectors this machine has, at most the limit
//! of `xbquant::set_max_instruction_set` (the results are the same bits with each).

use xbquant::InstructionSet;

/// The dispatcher for `xbquant::instruction_set()`.
pub(crate) fn arch() -> pulp::Arch {
    #[cfg(target_arch = "x86_64")]
    {
        match xbquant::instruction_set() {
            InstructionSet::Avx512 => pulp::Arch::new(),
            InstructionSet::Avx2 => {
                pulp::x86::V3::try_new().map_or(pulp::Arch::Scalar, pulp::Arch::V3)
            }
            _ => pulp::Arch::Scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        pulp::Arch::new()
    }
}
