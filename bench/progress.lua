-- wrk script: every request appends one progress event (MESSAGE_BYTES-byte message, default 100)
-- to the session in wrk's URL path. The report comes from wrk_report.lua beside this file.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message":"' .. string.rep("x", tonumber(os.getenv("MESSAGE_BYTES") or "100")) .. '"}'

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_report.lua")
