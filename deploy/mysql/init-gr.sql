-- Group Replication setup for Loyalty Card: MySQL 8.4, multi-primary, every member writable.
--
-- Nothing here runs raw. deploy/mysql/init-gr.sh runs one section at a time (a line
-- "-- @section NAME" starts one), after replacing each {{NAME}} with the environment
-- variable of that name, quoted for SQL. `init-gr.sh render SECTION` prints the result
-- with the secrets masked.

-- @section member-init
-- Once per member, on its empty datadir (run from docker-entrypoint-initdb.d). Everything
-- is local and kept out of the binary log, so every member starts with an empty GTID set
-- and can join the group; the same users and schema exist everywhere from the start.
SET SESSION sql_log_bin = 0;

-- The distributed-recovery user: a joining member copies missing transactions from a
-- donor over the 'group_replication_recovery' channel as this user, over TLS.
CREATE USER IF NOT EXISTS 'gr_recovery'@'%'
    IDENTIFIED BY '{{GR_RECOVERY_PASSWORD}}' REQUIRE SSL;
GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN, GROUP_REPLICATION_STREAM
    ON *.* TO 'gr_recovery'@'%';

CREATE DATABASE IF NOT EXISTS `{{LOYALTY_DB_NAME}}`
    CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;

-- The schema owner: `flask --app webapp db upgrade` runs as this account
-- (LOYALTY_SCHEMA_DATABASE_URL): migrations, the ledger's append-only triggers, and the
-- application user's table grants. Never the running app.
CREATE USER IF NOT EXISTS '{{LOYALTY_SCHEMA_USER}}'@'%' IDENTIFIED BY '{{LOYALTY_SCHEMA_PASSWORD}}';
GRANT ALL PRIVILEGES ON `{{LOYALTY_DB_NAME}}`.* TO '{{LOYALTY_SCHEMA_USER}}'@'%' WITH GRANT OPTION;

-- The application's user: reads and appends anywhere, no DDL. `db upgrade` then grants it
-- UPDATE and DELETE table by table, on every table except the append-only ledger and
-- used card codes, so the app can never rewrite coin history (webapp/database/privileges.py).
-- Plus performance_schema for the cluster health probe (replication_group_members).
CREATE USER IF NOT EXISTS '{{LOYALTY_DB_USER}}'@'%' IDENTIFIED BY '{{LOYALTY_DB_PASSWORD}}';
GRANT SELECT, INSERT ON `{{LOYALTY_DB_NAME}}`.* TO '{{LOYALTY_DB_USER}}'@'%';
GRANT SELECT ON performance_schema.* TO '{{LOYALTY_DB_USER}}'@'%';

SET SESSION sql_log_bin = 1;

-- The recovery channel's credentials live in the member's replication metadata.
CHANGE REPLICATION SOURCE TO
    SOURCE_USER = 'gr_recovery',
    SOURCE_PASSWORD = '{{GR_RECOVERY_PASSWORD}}'
    FOR CHANNEL 'group_replication_recovery';

-- The image's entrypoint loads the time zone tables through a plain session, binary log
-- on: those local GTIDs would make the member look "ahead" of the group and refuse to
-- join. This runs only on a brand-new datadir, so there is nothing else to lose.
RESET BINARY LOGS AND GTIDS;

-- @section bootstrap
-- On exactly one member, only when no member of the group is ONLINE: a brand-new group,
-- or a restart after every member stopped (init-gr.sh then picks the member whose GTID set
-- contains every other member's). Bootstrapping a second member would split the group in
-- two, which is why the flag goes back OFF straight away (init-gr.sh also turns it OFF if
-- START fails).
SET GLOBAL group_replication_single_primary_mode = OFF;
SET GLOBAL group_replication_enforce_update_everywhere_checks = ON;
SET GLOBAL group_replication_bootstrap_group = ON;
START GROUP_REPLICATION;
SET GLOBAL group_replication_bootstrap_group = OFF;
-- From now on a restarted member rejoins by itself.
SET PERSIST group_replication_start_on_boot = ON;

-- @section join
-- Every other member: contact the seeds, fetch missing transactions from a donor
-- (distributed recovery), then go ONLINE as another writable primary.
SET GLOBAL group_replication_single_primary_mode = OFF;
SET GLOBAL group_replication_enforce_update_everywhere_checks = ON;
START GROUP_REPLICATION;
SET PERSIST group_replication_start_on_boot = ON;

-- @section state
-- One line: this member's state in its own view of the group (empty when GR is stopped)
-- and its executed GTID set, for init-gr.sh to decide who bootstraps.
SELECT
    COALESCE(
        (SELECT MEMBER_STATE FROM performance_schema.replication_group_members
         WHERE MEMBER_ID = @@GLOBAL.server_uuid),
        'OFFLINE'
    ) AS member_state,
    REPLACE(@@GLOBAL.gtid_executed, '\n', '') AS gtid_executed;
