-- Completion probe for bench/gui.py: a frame tap that leaves a marker file at the first and the
-- last frame of every pass over the capture (the load, each re-filter, each retap), so that the
-- harness knows when Wireshark has dissected the whole file again. Each marker holds the
-- process's CPU time (os.clock), the frames seen in the pass and the pass number; its mtime is
-- the wall time. "fields" lists which of the fields named in SMTPDIAG_GUI_FIELDS exist (is the
-- plugin loaded?); "drawN"/"resetN" record the tap's draw and reset calls.
-- Inert unless SMTPDIAG_GUI_PROBE (a writable directory) and SMTPDIAG_GUI_FRAMES (the number of
-- the capture's last frame) are set.
local dir = os.getenv("SMTPDIAG_GUI_PROBE")
local last = tonumber(os.getenv("SMTPDIAG_GUI_FRAMES") or "")
if not dir or not last then return end

local pass, seen, draws, resets = 0, 0, 0, 0

local function mark(name)
  local f = io.open(dir .. "/" .. name, "w")
  if f then
    f:write(string.format("%.6f %d %d\n", os.clock(), seen, pass))
    f:close()
  end
end

do
  local found = {}
  for name in (os.getenv("SMTPDIAG_GUI_FIELDS") or ""):gmatch("%S+") do
    if pcall(Field.new, name) then found[#found + 1] = name end
  end
  local f = io.open(dir .. "/fields", "w")
  if f then
    f:write(table.concat(found, " "), "\n")
    f:close()
  end
end

local tap = Listener.new("frame")

function tap.packet(pinfo)
  local n = pinfo.number
  if n == 1 then
    pass = pass + 1
    seen = 0
    mark("pass" .. pass .. ".start")
  end
  seen = seen + 1
  if n == last then mark("pass" .. pass .. ".end") end
end

function tap.draw()
  draws = draws + 1
  mark("draw" .. draws)
end

function tap.reset()
  resets = resets + 1
  mark("reset" .. resets)
end
