#!/usr/bin/env bash
# Group Replication bootstrap for the Loyalty Card MySQL 8.4 members (multi-primary).
# The SQL lives in init-gr.sql; this script decides which section runs where.
#
#   init-gr.sh [member-init]   From docker-entrypoint-initdb.d, once per member on its
#                              empty datadir: recovery user, app user and schema, recovery
#                              channel credentials. Runs against the local socket.
#   init-gr.sh start-group     From the one-shot gr-init service or an operator: if no member
#                              is ONLINE, bootstraps the group on the member whose GTID set
#                              contains all the others'; then every other member joins.
#                              Safe to run again at any time: ONLINE members are left alone.
#   init-gr.sh render SECTION  Prints a section as it would run, passwords masked.
#
# Environment:
#   MYSQL_ROOT_PASSWORD                      all modes that connect
#   GR_RECOVERY_PASSWORD, LOYALTY_DB_USER, LOYALTY_DB_PASSWORD, LOYALTY_DB_NAME (loyalty),
#   LOYALTY_SCHEMA_USER (loyalty_owner), LOYALTY_SCHEMA_PASSWORD
#                                            member-init
#   GR_MEMBERS="host[:port],..."             start-group: the members to start (this region's)
#   GR_ALLOW_BOOTSTRAP=1|0                   start-group: 0 = only join a group that is already
#                                            running somewhere (every region but the first)
#   GR_WAIT_SECONDS=300                      start-group: how long to wait for members
#   GR_SQL_FILE                              default: init-gr.sql beside this script, else
#                                            /opt/loyalty-mysql/init-gr.sql

# The mysql image's entrypoint sources (rather than runs) an initdb script that lost its
# executable bit; this one exits on errors, so give it a bash of its own either way.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bash "${BASH_SOURCE[0]}" member-init
    return $?
fi

set -euo pipefail
# Bash 5.2 would expand '&' in a replacement string to the matched text.
shopt -u patsub_replacement 2>/dev/null || true

: "${LOYALTY_DB_NAME:=loyalty}"
: "${LOYALTY_SCHEMA_USER:=loyalty_owner}"
export LOYALTY_DB_NAME LOYALTY_SCHEMA_USER

log() { printf '%s init-gr: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

sql_file() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [[ -n "${GR_SQL_FILE:-}" ]]; then
        echo "$GR_SQL_FILE"
    elif [[ -f "$here/init-gr.sql" ]]; then
        echo "$here/init-gr.sql"
    else
        echo /opt/loyalty-mysql/init-gr.sql
    fi
}

# Prints one "-- @section NAME" block of init-gr.sql, unrendered.
section() {
    local file
    file="$(sql_file)"
    [[ -r "$file" ]] || die "cannot read $file"
    awk -v want="$1" '/^-- @section / { on = ($3 == want); next } on' "$file"
}

# Prints a section with every {{NAME}} replaced by $NAME, quoted for a SQL string literal
# (or checked to be a plain identifier for *_NAME and *_USER). A second argument masks
# passwords, for logs and for `render`.
render() {
    local sql names name value
    sql="$(section "$1")"
    [[ -n "${sql//[[:space:]]/}" ]] || die "no section '$1' in $(sql_file)"
    names="$(grep -o '{{[A-Z_]*}}' <<<"$sql" | sort -u | tr -d '{}' || true)"
    for name in $names; do
        value="${!name:-}"
        [[ -n "$value" ]] || die "$name is not set"
        [[ "$value" != *'{{'* ]] || die "$name must not contain '{{'"
        case "$name" in
            *_NAME | *_USER)
                [[ "$value" =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "$name must match [A-Za-z0-9_]{1,32}"
                ;;
            *PASSWORD*)
                if [[ -n "${2:-}" ]]; then
                    value='********'
                else
                    value="${value//\\/\\\\}"
                    value="${value//\'/\'\'}"
                fi
                ;;
            *)
                value="${value//\\/\\\\}"
                value="${value//\'/\'\'}"
                ;;
        esac
        sql="${sql//"{{$name}}"/"$value"}"
    done
    printf '%s\n' "$sql"
}

# Client options through a file descriptor: the password never shows up in `ps`.
client_options() {
    [[ -n "${MYSQL_ROOT_PASSWORD:-}" ]] || die "MYSQL_ROOT_PASSWORD is not set"
    printf '[client]\nuser=root\npassword="%s"\n' "$MYSQL_ROOT_PASSWORD"
}

mysql_local() {
    mysql --defaults-extra-file=<(client_options) --protocol=socket
}

# mysql_at HOST[:PORT] [mysql args...]
mysql_at() {
    local member="$1" host port
    shift
    host="${member%%:*}"
    port=3306
    [[ "$member" == *:* ]] && port="${member##*:}"
    mysql --defaults-extra-file=<(client_options) --protocol=tcp -h "$host" -P "$port" \
        --connect-timeout=5 --batch --skip-column-names "$@"
}

member_init() {
    log "creating the recovery and app users on this member (not binlogged)"
    render member-init | mysql_local
    log "member-init done"
}

declare -A STATE=() GTIDS=()

read_state() {
    local member="$1" line
    line="$(section state | mysql_at "$member")" || die "cannot read the state of $member"
    STATE[$member]="${line%%$'\t'*}"
    GTIDS[$member]="${line#*$'\t'}"
}

wait_reachable() {
    local member="$1" deadline=$((SECONDS + ${GR_WAIT_SECONDS:-300}))
    until mysql_at "$member" -e 'SELECT 1' >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$member did not accept connections in time"
        sleep 2
    done
}

# Prints the member whose executed GTID set contains every other member's: the only safe
# place to restart a group from. Fails if the sets diverge (a human must choose).
most_advanced() {
    local candidate other contains
    for candidate in "${MEMBERS[@]}"; do
        contains=1
        for other in "${MEMBERS[@]}"; do
            [[ "$other" == "$candidate" ]] && continue
            if [[ "$(mysql_at "$candidate" -e \
                "SELECT GTID_SUBSET('${GTIDS[$other]}', '${GTIDS[$candidate]}')")" != 1 ]]; then
                contains=0
                break
            fi
        done
        if ((contains)); then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

bootstrap() {
    local member="$1"
    log "bootstrapping the group on $member"
    if ! render bootstrap | mysql_at "$member"; then
        # Never leave the flag ON: the next START on this member would found a second group.
        mysql_at "$member" -e 'SET GLOBAL group_replication_bootstrap_group = OFF' || true
        die "bootstrap failed on $member"
    fi
}

join() {
    local member="$1"
    log "joining $member (state ${STATE[$member]})"
    if [[ "${STATE[$member]}" == ERROR ]]; then
        mysql_at "$member" -e 'STOP GROUP_REPLICATION' || true
    fi
    render join | mysql_at "$member" || die "$member could not join the group"
}

wait_online() {
    local member deadline=$((SECONDS + ${GR_WAIT_SECONDS:-300}))
    for member in "${MEMBERS[@]}"; do
        while read_state "$member" && [[ "${STATE[$member]}" != ONLINE ]]; do
            ((SECONDS < deadline)) || die "$member is ${STATE[$member]}, not ONLINE"
            sleep 2
        done
        log "$member is ONLINE"
    done
}

start_group() {
    local member leader="" running=0
    IFS=, read -ra MEMBERS <<<"${GR_MEMBERS:?GR_MEMBERS is not set (host[:port],...)}"
    for member in "${MEMBERS[@]}"; do
        wait_reachable "$member"
        read_state "$member"
        log "$member: ${STATE[$member]} gtid_executed=${GTIDS[$member]:-<empty>}"
        case "${STATE[$member]}" in ONLINE | RECOVERING) running=1 ;; esac
    done

    if ((!running)); then
        if [[ "${GR_ALLOW_BOOTSTRAP:-1}" != 1 ]]; then
            log "no member here is ONLINE and GR_ALLOW_BOOTSTRAP=0: joining the group elsewhere"
        else
            leader="$(most_advanced)" || die "the members' GTID sets diverge: choose the" \
                "member to keep by hand (docs/operations.md, 'Quorum loss')"
            bootstrap "$leader"
            read_state "$leader"
        fi
    fi

    for member in "${MEMBERS[@]}"; do
        case "${STATE[$member]}" in
            ONLINE | RECOVERING) ;;
            *) join "$member" ;;
        esac
    done
    wait_online
    mysql_at "${MEMBERS[0]}" --table --column-names -e \
        'SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE, MEMBER_VERSION
         FROM performance_schema.replication_group_members ORDER BY MEMBER_HOST' >&2
}

case "${1:-member-init}" in
    member-init) member_init ;;
    start-group) start_group ;;
    render) render "${2:?usage: init-gr.sh render SECTION}" mask ;;
    *) die "usage: init-gr.sh [member-init | start-group | render SECTION]" ;;
esac
