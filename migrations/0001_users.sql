-- REST API users; passwords are bcrypt hashes.
CREATE TABLE IF NOT EXISTS users (
  username VARCHAR(150) PRIMARY KEY,
  password_hash VARCHAR(100) NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
