-- wrk script used by bench/run.py to mint many distinct access tokens fast:
-- POSTs to the Keycloak stand-in's /_standin/mint and appends each access_token to
-- the file named by the first script argument (one per line).
--
--   wrk -t1 -c8 -d5s -s bench/mint.lua http://127.0.0.1:PORT/_standin/mint -- OUT [JSON_BODY]

local out

function init(args)
  out = assert(io.open(args[1], "a"))
  out:setvbuf("full")
  wrk.method = "POST"
  wrk.body = args[2] or '{"username":"alice","lifetime":3600}'
  wrk.headers["Content-Type"] = "application/json"
end

function response(status, headers, body)
  if status == 200 then
    local token = body:match('"access_token"%s*:%s*"([^"]+)"')
    if token then
      out:write(token, "\n")
    end
  end
end
