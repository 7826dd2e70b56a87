# Sourced by scripts/serve and scripts/test: make .venv hold newswatch with the extras they need.
#
# Why editable, and why a stamp: an editable install points .venv at this checkout, so a change to the code
# needs no reinstall; only a change to pyproject.toml (dependencies, entry points) or to the extras asked
# for does. The stamp (.venv/.newswatch-installed) holds pyproject.toml's hash and each extras spec installed
# with it, so a run with nothing changed starts the command at once instead of running pip.
ensure_venv() {
    local spec=$1 stamp=.venv/.newswatch-installed hash
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    hash=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
    if [ -x .venv/bin/newswatch ] && [ -f "$stamp" ] && grep -qxF "$hash $spec" "$stamp"; then
        return 0
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
    { grep -F "$hash " "$stamp" 2>/dev/null || true; echo "$hash $spec"; } > "$stamp.new"
    mv "$stamp.new" "$stamp"
}
