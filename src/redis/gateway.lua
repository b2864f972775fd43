-- The gateway's shared state, run inside Redis so each call is one atomic step whichever gateway
-- makes it (src/redis/redis_script.h). Called as
--   EVALSHA <sha> 0 <operation> <prefix> <now_unix_ms> <arguments...>
-- where the session operations' first argument is the inactivity timeout in ms.
-- Keys, all under <prefix>:
--   s:<id>     hash: ws, status, started, activity, ended, seq (newest sequence id)
--   e:<id>     stream of the retained events, entry id <sequence_id>-0, fields t, m, ts, and d
--              (the event's data, a serialized JSON object) only when it has data
--   f:<id>     list: queued follow-ups, oldest first
--   running    hash: workspace id -> its running session (its size is the active count)
--   activity   sorted set: running sessions by last activity (for reaping)
--   all        sorted set: every session by last activity (for listing)
--   ended      sorted set: ended sessions by the time they ended (for purging)
--   counts     hash: status -> sessions held in it
--   feed       channel: one message per change, for the gateways' live followers
--   rate:<principal digest>:<window start>   requests counted in one rate-limit window
--   token:<digest>   a password-session token's expiry (the token itself is never stored)
--   tokens     sorted set: token digests by expiry
--   tokens_issued   how many tokens were issued
-- Replies: {'ok', ...} or {'error', code}. A snapshot is {id, ws, status, started, activity,
-- queued_followups}.

local operation = ARGV[1]
local P = ARGV[2]
local now = tonumber(ARGV[3])
local timeout = tonumber(ARGV[4])

local function skey(id) return P .. 's:' .. id end
local function ekey(id) return P .. 'e:' .. id end
local function fkey(id) return P .. 'f:' .. id end

local function snapshot(id)
  local h = redis.call('HMGET', skey(id), 'ws', 'status', 'started', 'activity')
  return {id, h[1], h[2], tonumber(h[3]), tonumber(h[4]), redis.call('LLEN', fkey(id))}
end

-- Every change goes out on the feed with the session's state after it: [snapshot..., event]
-- where event is {} for a change without one, and {seq, type, message, ts[, data]} otherwise.
local function publish(id, event)
  local s = snapshot(id)
  redis.call('PUBLISH', P .. 'feed', cjson.encode({s[1], s[2], s[3], s[4], s[5], s[6], event}))
end

local function touch(id)
  if redis.call('HGET', skey(id), 'status') == 'running' then
    redis.call('HSET', skey(id), 'activity', now)
    redis.call('ZADD', P .. 'activity', now, id)
    redis.call('ZADD', P .. 'all', now, id)
  end
end

local function end_session(id, status)
  local ws = redis.call('HGET', skey(id), 'ws')
  redis.call('HSET', skey(id), 'status', status, 'ended', now)
  if redis.call('HGET', P .. 'running', ws) == id then
    redis.call('HDEL', P .. 'running', ws)
  end
  redis.call('ZREM', P .. 'activity', id)
  redis.call('ZADD', P .. 'ended', now, id)
  local owner = redis.call('HGET', skey(id), 'owner')
  if owner then redis.call('SREM', P .. 'owned:' .. owner, id) end
  redis.call('HINCRBY', P .. 'counts', 'running', -1)
  redis.call('HINCRBY', P .. 'counts', status, 1)
  publish(id, {})
end

-- A session's fields in one read, for the append path: nil when there is no such session.
local function load(id)
  local h = redis.call('HMGET', skey(id), 'ws', 'status', 'started', 'activity', 'seq')
  if not h[2] then return nil end
  return {ws = h[1], status = h[2], started = tonumber(h[3]), activity = tonumber(h[4]),
          seq = tonumber(h[5]) or 0}
end

-- Appends an event to a session loaded by `load` (updated in place: seq, activity), whose queue
-- holds `queued` follow-ups, and publishes it with the state after it. The state is the one in
-- hand, so an append reads the session once. `data` ('' or nil for none) is stored and
-- published only when the event has some, so an event without data is stored and published
-- exactly as before data existed.
local function append_event(id, s, queued, event_type, message, max_events, data)
  s.seq = s.seq + 1
  if data == nil or data == '' then
    data = nil
    redis.call('XADD', ekey(id), 'MAXLEN', max_events, s.seq .. '-0', 't', event_type,
               'm', message, 'ts', now)
  else
    redis.call('XADD', ekey(id), 'MAXLEN', max_events, s.seq .. '-0', 't', event_type,
               'm', message, 'ts', now, 'd', data)
  end
  if s.status == 'running' then
    redis.call('HSET', skey(id), 'seq', s.seq, 'activity', now)
    -- The indexes by activity change only when the time does (a busy session's appends often
    -- share a millisecond).
    if s.activity ~= now then
      redis.call('ZADD', P .. 'activity', now, id)
      redis.call('ZADD', P .. 'all', now, id)
    end
    s.activity = now
  else
    redis.call('HSET', skey(id), 'seq', s.seq)
  end
  redis.call('PUBLISH', P .. 'feed', cjson.encode({id, s.ws, s.status, s.started, s.activity,
                                                   queued, {s.seq, event_type, message, now,
                                                            data}}))
  return s.seq
end

-- Times out running sessions idle for longer than the timeout (a bounded number per call).
local function reap_stale()
  local stale = redis.call('ZRANGEBYSCORE', P .. 'activity', '-inf', '(' .. (now - timeout),
                           'LIMIT', 0, 1000)
  for _, id in ipairs(stale) do
    end_session(id, 'timed_out')
  end
  return stale
end

local function exists(id)
  return redis.call('EXISTS', skey(id)) == 1
end

if operation == 'open' then
  -- ARGV: ws, new_id, max_active, owner (the gateway that runs its worker; '' for none)
  local ws, new_id, max_active, owner = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
  reap_stale()
  local current = redis.call('HGET', P .. 'running', ws)
  if current then
    touch(current)
    return {'ok', 'reused', snapshot(current)}
  end
  if redis.call('HLEN', P .. 'running') >= max_active then
    return {'error', 'limit'}
  end
  -- An id a session has already is not handed out twice: the caller retries with another.
  if exists(new_id) then return {'ok', 'taken'} end
  redis.call('HSET', skey(new_id), 'ws', ws, 'status', 'running', 'started', now,
             'activity', now, 'ended', 0, 'seq', 0)
  redis.call('HSET', P .. 'running', ws, new_id)
  redis.call('ZADD', P .. 'activity', now, new_id)
  redis.call('ZADD', P .. 'all', now, new_id)
  redis.call('HINCRBY', P .. 'counts', 'running', 1)
  if owner ~= '' then
    redis.call('HSET', skey(new_id), 'owner', owner)
    redis.call('SADD', P .. 'owned:' .. owner, new_id)
    redis.call('SADD', P .. 'owners', owner)
  end
  return {'ok', 'created', snapshot(new_id)}
end

if operation == 'get' then
  local id = ARGV[5]
  reap_stale()
  if not exists(id) then return {'error', 'not_found'} end
  return {'ok', snapshot(id)}
end

if operation == 'append' then
  -- ARGV: id, event_type, message, max_events, require_running (0/1), queue_followup (0/1),
  -- data ('' or absent for none)
  local id, event_type, message = ARGV[5], ARGV[6], ARGV[7]
  local max_events, require_running, queue = tonumber(ARGV[8]), ARGV[9] == '1', ARGV[10] == '1'
  local data = ARGV[11]
  reap_stale()
  local s = load(id)
  if not s then return {'error', 'not_found'} end
  if require_running and s.status ~= 'running' then
    return {'error', 'not_running', s.status}
  end
  -- Queued first, so the feed message of the event reports the queue with it.
  local queued
  if queue then
    queued = redis.call('RPUSH', fkey(id), message)
  else
    queued = redis.call('LLEN', fkey(id))
  end
  local seq = append_event(id, s, queued, event_type, message, max_events, data)
  return {'ok', seq, {id, s.ws, s.status, s.started, s.activity, queued}}
end

if operation == 'append_many' then
  -- ARGV: id, max_events, then event_type, message and data ('' for none) of each event.
  -- Whatever the state.
  local id, max_events = ARGV[5], tonumber(ARGV[6])
  reap_stale()
  local s = load(id)
  if not s then return {'error', 'not_found'} end
  local queued = redis.call('LLEN', fkey(id))
  for i = 7, #ARGV, 3 do
    append_event(id, s, queued, ARGV[i], ARGV[i + 1], max_events, ARGV[i + 2])
  end
  return {'ok'}
end

if operation == 'drain' then
  -- ARGV: id, limit
  local id, limit = ARGV[5], tonumber(ARGV[6])
  reap_stale()
  if not exists(id) then return {'error', 'not_found'} end
  local drained = redis.call('LPOP', fkey(id), limit)
  if not drained then drained = {} end
  touch(id)
  return {'ok', drained, snapshot(id)}
end

if operation == 'end' then
  -- ARGV: id, terminal status
  local id, status = ARGV[5], ARGV[6]
  reap_stale()
  if not exists(id) then return {'error', 'not_found'} end
  if redis.call('HGET', skey(id), 'status') == 'running' then
    touch(id)
    end_session(id, status)
  end
  return {'ok', snapshot(id)}
end

if operation == 'discard' then
  local id = ARGV[5]
  if exists(id) then
    local h = redis.call('HMGET', skey(id), 'ws', 'status', 'owner')
    if redis.call('HGET', P .. 'running', h[1]) == id then
      redis.call('HDEL', P .. 'running', h[1])
    end
    if h[3] then redis.call('SREM', P .. 'owned:' .. h[3], id) end
    redis.call('HINCRBY', P .. 'counts', h[2], -1)
    redis.call('DEL', skey(id), ekey(id), fkey(id))
    redis.call('ZREM', P .. 'activity', id)
    redis.call('ZREM', P .. 'all', id)
    redis.call('ZREM', P .. 'ended', id)
  end
  return {'ok'}
end

if operation == 'lease' then
  -- ARGV: gateway id, lease ms, max_events. Renews this gateway's lease, then fails the running
  -- sessions of every gateway whose lease has expired (their workers died with it).
  local gateway, lease_ms, max_events = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
  redis.call('SET', P .. 'lease:' .. gateway, now, 'PX', lease_ms)
  local failed = {}
  for _, owner in ipairs(redis.call('SMEMBERS', P .. 'owners')) do
    if redis.call('EXISTS', P .. 'lease:' .. owner) == 0 then
      for _, id in ipairs(redis.call('SMEMBERS', P .. 'owned:' .. owner)) do
        local s = load(id)
        if s and s.status == 'running' then
          append_event(id, s, redis.call('LLEN', fkey(id)), 'gateway.owner_lost',
                       'the gateway that ran this session\'s worker stopped renewing its lease',
                       max_events)
          end_session(id, 'failed')
          failed[#failed + 1] = id
        end
      end
      redis.call('DEL', P .. 'owned:' .. owner)
      redis.call('SREM', P .. 'owners', owner)
    end
  end
  return {'ok', failed}
end

if operation == 'reap' then
  local reaped = reap_stale()
  local snapshots = {}
  for i, id in ipairs(reaped) do snapshots[i] = snapshot(id) end
  return {'ok', snapshots, redis.call('HLEN', P .. 'running')}
end

if operation == 'replay' then
  -- ARGV: id, after, limit. Reply: snapshot, first retained id, newest id, events as
  -- {seq, type, message, ts[, data]} after `after`, at most `limit`. `after` stays text: it is any
  -- unsigned 64-bit id, which a Lua number cannot hold exactly.
  local id, after, limit = ARGV[5], ARGV[6], ARGV[7]
  reap_stale()
  if not exists(id) then return {'error', 'not_found'} end
  local first = redis.call('XRANGE', ekey(id), '-', '+', 'COUNT', 1)
  local first_id = 0
  if #first > 0 then first_id = tonumber(string.match(first[1][1], '^(%d+)')) end
  -- Entries after `after`-0 (an exclusive start): every entry's id is <sequence id>-0.
  -- (COUNT 0 answers nil: no entries.)
  local entries = redis.call('XRANGE', ekey(id), '(' .. after .. '-0', '+', 'COUNT', limit) or {}
  local events = {}
  for i, entry in ipairs(entries) do
    local fields = {}
    for j = 1, #entry[2], 2 do fields[entry[2][j]] = entry[2][j + 1] end
    -- (An entry without a 'd' field, as every entry before data existed, has no data: the
    -- trailing nil ends the reply's array at four.)
    events[i] = {tonumber(string.match(entry[1], '^(%d+)')), fields.t, fields.m, tonumber(fields.ts),
                 fields.d}
  end
  return {'ok', snapshot(id), first_id, tonumber(redis.call('HGET', skey(id), 'seq')), events}
end

if operation == 'list' then
  -- ARGV: status ('' for any), ws ('' for any), limit, after_activity ('' for none), after_id.
  -- Newest activity first, ties by greater id first; returns limit + 1 at most (the extra one
  -- says there is more).
  local status, ws, limit = ARGV[5], ARGV[6], tonumber(ARGV[7])
  local after_activity, after_id = ARGV[8], ARGV[9]
  reap_stale()
  local max = '+inf'
  if after_activity ~= '' then max = after_activity end
  local found = {}
  local offset = 0
  while #found <= limit do
    local page = redis.call('ZREVRANGEBYSCORE', P .. 'all', max, '-inf', 'WITHSCORES', 'LIMIT',
                            offset, 500)
    if #page == 0 then break end
    for i = 1, #page, 2 do
      local id, score = page[i], page[i + 1]
      local past_cursor = after_activity == '' or tonumber(score) < tonumber(after_activity) or id < after_id
      if past_cursor and #found <= limit then
        local s = snapshot(id)
        if (status == '' or s[3] == status) and (ws == '' or s[2] == ws) then
          found[#found + 1] = s
        end
      end
    end
    offset = offset + 500
  end
  return {'ok', found}
end

if operation == 'purge' then
  -- ARGV: cutoff (sessions that ended before it are deleted)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'ended', '-inf', '(' .. ARGV[5], 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    redis.call('HINCRBY', P .. 'counts', redis.call('HGET', skey(id), 'status'), -1)
    redis.call('DEL', skey(id), ekey(id), fkey(id))
    redis.call('ZREM', P .. 'all', id)
    redis.call('ZREM', P .. 'ended', id)
  end
  return {'ok', #ids}
end

if operation == 'stats' then
  return {'ok', redis.call('HLEN', P .. 'running'), redis.call('HGETALL', P .. 'counts')}
end

if operation == 'rate' then
  -- ARGV: principal digest, window ms, max requests, lease size. A fixed window aligned to the
  -- epoch, of which the caller takes up to `lease` requests at once (a lease, counted down by
  -- the gateway: src/redis/redis_rate_limiter.h), never past the limit.
  -- Reply: {'ok', requests granted}; 0 is a refusal.
  local window, max, lease = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local start = now - (now % window)
  local key = P .. 'rate:' .. ARGV[4] .. ':' .. start
  local count = tonumber(redis.call('GET', key) or '0')
  local granted = math.min(lease, max - count)
  if granted <= 0 then return {'ok', 0} end
  redis.call('INCRBY', key, granted)
  if count == 0 then redis.call('PEXPIRE', key, window * 2) end
  return {'ok', granted}
end

if operation == 'token_add' then
  -- ARGV: digest, expires_unix_ms
  redis.call('ZREMRANGEBYSCORE', P .. 'tokens', '-inf', now)
  -- Relative to the gateway's clock, like every time here (validity is checked against it too).
  local ttl = math.max(1, tonumber(ARGV[5]) - now)
  redis.call('SET', P .. 'token:' .. ARGV[4], ARGV[5], 'PX', ttl)
  redis.call('ZADD', P .. 'tokens', ARGV[5], ARGV[4])
  redis.call('INCR', P .. 'tokens_issued')
  return {'ok'}
end

if operation == 'token_valid' then
  local expires = redis.call('GET', P .. 'token:' .. ARGV[4])
  if expires and tonumber(expires) > now then return {'ok', 1} end
  return {'ok', 0}
end

if operation == 'token_stats' then
  redis.call('ZREMRANGEBYSCORE', P .. 'tokens', '-inf', now)
  return {'ok', redis.call('ZCARD', P .. 'tokens'),
          tonumber(redis.call('GET', P .. 'tokens_issued') or '0')}
end

return redis.error_reply('unknown operation ' .. tostring(operation))
