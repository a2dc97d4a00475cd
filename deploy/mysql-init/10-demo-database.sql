-- Run by the mysql image on its first start (empty data volume), after it has created the
-- `charged` database and user from MYSQL_DATABASE / MYSQL_USER / MYSQL_PASSWORD.
-- The demo profile collects the simulated fleet into a database of its own, so simulated
-- chargers never mix with real ones.
CREATE DATABASE IF NOT EXISTS `charged_demo` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
GRANT ALL PRIVILEGES ON `charged_demo`.* TO 'charged'@'%';
