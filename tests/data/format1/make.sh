set -e
CS=/work/wt-f1/.venv/bin/claude-sync
export CLAUDE_SYNC_PASSPHRASE="format one fixture passphrase"
dev() { export HOME=/tmp/f1/$1 CLAUDE_SYNC_HOME=/tmp/f1/$1/.claude-sync CLAUDE_CONFIG_DIR=/tmp/f1/$1/.claude; mkdir -p $HOME/.claude; }
dev a
$CS init --local /tmp/f1/remote --device-name laptop --yes
mkdir -p $HOME/.claude/projects/-srv-f1-app/s1 $HOME/.claude/commands
printf '{"type":"user","cwd":"/srv/f1/app","uuid":"u1","timestamp":"2026-11-01T10:00:00Z","message":{"content":"hello"}}\n' > $HOME/.claude/projects/-srv-f1-app/s1.jsonl
printf 'agent\n' > $HOME/.claude/projects/-srv-f1-app/s1/sub.jsonl
printf '# notes\n' > $HOME/.claude/CLAUDE.md
printf '{"theme": "dark"}\n' > $HOME/.claude/settings.json
chmod 600 $HOME/.claude/settings.json
printf 'deploy it\n' > $HOME/.claude/commands/deploy.md
printf 'old command\n' > $HOME/.claude/commands/old.md
$CS push
printf '{"type":"assistant","cwd":"/srv/f1/app","uuid":"u2","parentUuid":"u1","timestamp":"2026-11-01T10:00:05Z","message":{"content":"hi"}}\n' >> $HOME/.claude/projects/-srv-f1-app/s1.jsonl
rm $HOME/.claude/commands/old.md
$CS push
dev b
$CS init --local /tmp/f1/remote --device-name desktop --yes
$CS pull
printf '# notes\nfrom the desktop\n' > $HOME/.claude/CLAUDE.md
$CS push
