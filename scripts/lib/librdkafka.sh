# Shared by scripts/bench and scripts/librdkafka-suite: librdkafka's sources, as vendored by the
# `rdkafka-sys` crate (fetched with cargo, nothing else downloaded), built with librdkafka's own
# ./configure + make. Source this file; it defines functions only.

# rdkafka-sys 4.10.0 vendors librdkafka 2.12.1.
RDKAFKA_SYS_VERSION="4.10.0"

# Debian's -dev packages librdkafka's build needs (zlib, zstd, lz4; RapidJSON, which its test suite
# uses to check statistics), and a C/C++ toolchain.
rdkafka_install_build_deps() {
    local pkgs=() p
    for p in liblz4-dev libzstd-dev zlib1g-dev rapidjson-dev make gcc g++ pkg-config python3; do
        dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
    done
    [ "${#pkgs[@]}" -eq 0 ] && return 0
    printf 'librdkafka: installing %s\n' "${pkgs[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# rdkafka_fetch_sources WORKDIR: gets the rdkafka-sys crate through cargo (a throwaway project in
# WORKDIR whose only dependency is rdkafka-sys; `cargo fetch` downloads, it builds nothing) and
# prints the path of the librdkafka source tree it vendors.
rdkafka_fetch_sources() {
    local fetch="$1"
    mkdir -p "$fetch/src"
    cat >"$fetch/Cargo.toml" <<TOML
[package]
name = "strom-librdkafka-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
rdkafka-sys = { version = "=$RDKAFKA_SYS_VERSION", default-features = false }

# Not a member of the Strom workspace above us.
[workspace]
TOML
    echo 'fn main() {}' >"$fetch/src/main.rs"
    (cd "$fetch" && cargo fetch -q) || return 1
    local manifest
    manifest="$(cd "$fetch" && cargo metadata -q --format-version 1 \
        | grep -o '"manifest_path":"[^"]*/rdkafka-sys-[^"/]*/Cargo.toml"' | head -n1 \
        | sed -e 's/^"manifest_path":"//' -e 's/"$//')"
    [ -n "$manifest" ] || { echo "librdkafka: cannot locate rdkafka-sys in cargo metadata" >&2; return 1; }
    local vendored
    vendored="$(dirname "$manifest")/librdkafka"
    [ -x "$vendored/configure" ] || { echo "librdkafka: no sources at $vendored" >&2; return 1; }
    printf '%s\n' "$vendored"
}

# rdkafka_build_lib SRC LOGDIR: copies nothing; configures SRC (a writable copy of the vendored
# tree) without TLS/SASL/curl and builds src/librdkafka.a. Logs go to LOGDIR/{configure,make}.log.
rdkafka_build_lib() {
    local src="$1" logs="$2"
    (
        cd "$src"
        ./configure --no-download --disable-ssl --disable-gssapi --disable-curl \
            >"$logs/configure.log" 2>&1 \
            || { tail -n 40 "$logs/configure.log" >&2; exit 1; }
        nice -n 19 make -j2 -C src librdkafka.a >"$logs/make.log" 2>&1 \
            || { tail -n 40 "$logs/make.log" >&2; exit 1; }
    )
}
