-- The Grafana datasource reads one receiver's tiles over a time range, and lists the receivers
-- (a loose index scan): both want observation_tile by (rx, obsid).
CREATE INDEX IF NOT EXISTS observation_tile_rx_idx ON observation_tile (rx, obsid);
