# Sourced by the side-env setup scripts: find_python X.Y VAR prints an interpreter of Python X.Y,
# taken from $VAR if set, else pythonX.Y on PATH, else the newest X.Y.* that pyenv has; exits 1
# (naming the three ways) when there is none.
find_python() {
    local want=$1 var=$2 v
    if [ -n "${!var:-}" ]; then
        echo "${!var}"
        return
    fi
    if command -v "python$want" >/dev/null 2>&1 && "python$want" -c "" >/dev/null 2>&1; then
        command -v "python$want"
        return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        v=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -t. -k3,3n | tail -n1 || true)
        if [ -n "$v" ]; then
            echo "$(pyenv root)/versions/$v/bin/python$want"
            return
        fi
    fi
    echo "$(basename "$0"): no Python $want found (set $var, put python$want on PATH, or 'pyenv install $want')" >&2
    exit 1
}
