# The Debian package: `cpack -G DEB` in a build directory configured with
# -DCMAKE_INSTALL_PREFIX=/usr (docs/install.md). Its run-time dependencies are computed from the
# programs' shared libraries (dpkg-shlibdeps: libfuse3, libfabric, libpmem2, libsodium, ...),
# plus the packages hafs runs but does not link.
set(CPACK_PACKAGE_NAME hafs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "hafs developers <hafs@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "highly available file server for Linux clusters")
set(CPACK_PACKAGE_DESCRIPTION "A FUSE file server whose writes are staged in a persistent NV log
and mirrored into the partner node's NV log over libfabric before they are acknowledged; the
partner takes over a dead node's volumes. Includes hafsd, hafsctl, hafs-nvlog, hafs-ackcheck,
a systemd unit (hafsd@.service) and the NFS re-export helper for nfs-ganesha.")
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)  # the programs without their debug information (a 1.4 MB package)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# fuse3: fusermount3 and /etc/fuse.conf. Recommended: rdma-core (the verbs provider's user space
# on RDMA NICs) and libfabric-bin (fi_info, to see which providers a NIC offers).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "rdma-core, libfabric-bin")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nfs-ganesha, nfs-ganesha-vfs, fence-agents")
include(CPack)
