-- smtpdiag.version: the plugin's version. lua/build.py reads it from here and replaces this
-- module in the built smtpdiag.lua by one that also names the build (a hash of the modules).
return { version = "0.1.0", build = "source" }
