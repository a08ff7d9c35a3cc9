//! Table tests of the pure reconciler: snapshots in, changes out.
