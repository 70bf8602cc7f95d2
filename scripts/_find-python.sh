# Sourced by the side-env setup scripts: find_python X.Y VAR prints an interpreter of Python X.Y,
# taken from $VAR if set, else pythonX.Y on PATH, else the newest X.Y.* that pyenv has; exits 1
# (naming the three ways) when there is none, and when the one found is not Python X.Y.
find_python() {
    local want=$1 var=$2 v py=""
    if [ -n "${!var:-}" ]; then
        py=${!var}
    elif command -v "python$want" >/dev/null 2>&1 && "python$want" -c "" >/dev/null 2>&1; then
        py=$(command -v "python$want")
    elif command -v pyenv >/dev/null 2>&1; then
        v=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -t. -k3,3n | tail -n1 || true)
        [ -n "$v" ] && py="$(pyenv root)/versions/$v/bin/python$want"
    fi
    if [ -z "$py" ]; then
        echo "$(basename "$0"): no Python $want found (set $var, put python$want on PATH, or 'pyenv install $want')" >&2
        exit 1
    fi
    "$py" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.'))), sys.version" || {
        echo "$(basename "$0"): $py is not Python $want" >&2
        exit 1
    }
    echo "$py"
}
