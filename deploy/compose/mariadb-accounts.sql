-- Accounts for the MariaDB pair in docker-compose.yml (run once, when a server's data directory is created).
-- turnout: replication, the snapshot's commit lock, the heartbeat table, the cutover's read-only fence
-- (READ ONLY ADMIN, CONNECTION ADMIN; SLAVE MONITOR to see that blue is no replica itself) and, on green, applying, its progress database and the way back
-- (BINLOG REPLAY marks turnout's writes in their own GTID domain; REPLICATION SLAVE reads green's binlog).
CREATE USER IF NOT EXISTS 'turnout'@'%' IDENTIFIED BY 'turnout';
GRANT REPLICATION SLAVE, BINLOG MONITOR, BINLOG ADMIN, BINLOG REPLAY, RELOAD, READ ONLY ADMIN, CONNECTION ADMIN, SLAVE MONITOR ON *.* TO 'turnout'@'%';
GRANT ALL PRIVILEGES ON `app`.* TO 'turnout'@'%';
GRANT ALL PRIVILEGES ON `turnout`.* TO 'turnout'@'%';
-- The application: data only. The read-only fence stops it; it must not hold READ ONLY ADMIN or SUPER.
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app';
GRANT SELECT, INSERT, UPDATE, DELETE ON `app`.* TO 'app'@'%';
