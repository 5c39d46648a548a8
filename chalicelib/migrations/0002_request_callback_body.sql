-- Callbacks of calibration requests (chalicelib/requests): the exact JSON body told to the
-- requester, fixed when the fit finished, so every retry sends the same bytes (and signature).
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_body text;

-- A request's attempts, oldest first (the retry window starts at the first attempt).
CREATE INDEX IF NOT EXISTS calibration_request_callback_attempt_request_idx
    ON calibration_request_callback_attempt (request_id, attempted_at);
