-- Accounts an operator disabled (`keyframe user disable`): they cannot sign in.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
