-- Runs once when the PostgreSQL volume is new: one database for Berth, two for Temporal.
CREATE DATABASE berth;
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
