# Sourced by the MariaDB image on its first start (empty data directory): the runtime user and the
# migration user of README "A least-privilege database user", with the passwords from deploy/.env.
docker_process_sql --database=mysql <<SQL
CREATE USER 'waixie_app'@'%' IDENTIFIED BY '${APP_DB_PASSWORD}';
GRANT SELECT, INSERT, UPDATE, DELETE ON waixie.* TO 'waixie_app'@'%';
CREATE USER 'waixie_migrate'@'%' IDENTIFIED BY '${MIGRATE_DB_PASSWORD}';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES ON waixie.* TO 'waixie_migrate'@'%';
SQL
