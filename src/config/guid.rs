//! The tenant ID check: Microsoft Entra tenant IDs are GUIDs, and a value that is not one (or is the
//! all-zero placeholder of the static manifests) would give every pod credentials that cannot work.

/// Why `value` is not a usable tenant ID, or `Ok` for a GUID in the 8-4-4-4-12 hexadecimal form
/// (either case) other than all zeros.
pub fn tenant_guid(value: &str) -> Result<(), TenantIdProblem> {
    let groups: Vec<&str> = value.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()));
    if !shape_ok {
        return Err(TenantIdProblem::NotAGuid);
    }
    if value.chars().all(|c| c == '0' || c == '-') {
        return Err(TenantIdProblem::AllZero);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantIdProblem {
    NotAGuid,
    AllZero,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_other_than_all_zero_are_tenant_ids() {
        for ok in [
            "11111111-2222-3333-4444-555555555555",
            "AAAAAAAA-bbbb-CCCC-dddd-0123456789ab",
            "00000000-0000-0000-0000-000000000001",
        ] {
            assert_eq!(tenant_guid(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            tenant_guid("00000000-0000-0000-0000-000000000000"),
            Err(TenantIdProblem::AllZero)
        );
        for bad in [
            "tenant-1",
            "",
            "11111111222233334444555555555555",
            "{11111111-2222-3333-4444-555555555555}",
            " 11111111-2222-3333-4444-555555555555",
            "11111111-2222-3333-4444-55555555555",
            "11111111-2222-3333-4444-5555555555555",
            "1111111-22222-3333-4444-555555555555",
            "g1111111-2222-3333-4444-555555555555",
            "11111111-2222-3333-4444-555555555555-",
            "contoso.onmicrosoft.com",
        ] {
            assert_eq!(tenant_guid(bad), Err(TenantIdProblem::NotAGuid), "{bad:?}");
        }
    }
}
