#!/bin/sh
# Keep UDP 24512-24575 free for Tolk on a BigBlueButton server.
#
# BigBlueButton's customisation hook: bbb-conf runs /etc/bigbluebutton/bbb-conf/apply-config.sh
# before it starts BBB (bbb-conf --restart, --start, and at the end of every upgrade), so a change
# made there survives package upgrades, which rewrite FreeSWITCH's switch.conf.xml.
#
# With no apply-config.sh yet, install this file as it is:
#   install -D -m 0755 deploy/bbb/apply-config.sh /etc/bigbluebutton/bbb-conf/apply-config.sh
# With one already, append the block between the ">>> tolk" and "<<< tolk" lines:
#   sed -n '/^# >>> tolk/,/^# <<< tolk/p' deploy/bbb/apply-config.sh >>/etc/bigbluebutton/bbb-conf/apply-config.sh
# then `bbb-conf --restart` (or `systemctl restart freeswitch` when no meeting is running).
#
# Why (docs/bbb.md, "Media ports"): BBB's FreeSWITCH takes RTP ports 16384-24576, mediasoup and
# bbb-webrtc-recorder 24577-32768. FreeSWITCH picks a port at random in its range without testing
# whether it is free (rtp-port-usage-robustness is off), so Tolk's block is taken off the top of
# FreeSWITCH's range: its rtp-end-port goes from 24576 down to 24511. That leaves FreeSWITCH
# 16384-24511, about 4,000 RTP sessions (it uses even ports), for at most 1,000 calls
# (max-sessions in the same file).

# >>> tolk: reserve UDP 24512-24575 for Tolk's media shards
tolk_fs_conf=${TOLK_FS_SWITCH_CONF:-/opt/freeswitch/etc/freeswitch/autoload_configs/switch.conf.xml}
tolk_fs_end=${TOLK_FS_RTP_END:-24511}
# tolk_fs_param NAME VALUE set|keep: add <param name=NAME value=VALUE/> to switch.conf.xml when
# it is missing (or commented out), else set its value ("set") or leave it ("keep").
tolk_fs_param() {
    if [ "$(xmlstarlet sel -t -v "count(/configuration/settings/param[@name='$1'])" "$tolk_fs_conf")" = 0 ]; then
        xmlstarlet edit --inplace -s /configuration/settings -t elem -n tolk-param -v '' \
            -i //tolk-param -t attr -n name -v "$1" -i //tolk-param -t attr -n value -v "$2" \
            -r //tolk-param -v param "$tolk_fs_conf"
    elif [ "$3" = set ]; then
        xmlstarlet edit --inplace -u "/configuration/settings/param[@name='$1']/@value" -v "$2" "$tolk_fs_conf"
    fi
}
if [ -f "$tolk_fs_conf" ] && command -v xmlstarlet >/dev/null 2>&1; then
    # Without these parameters FreeSWITCH uses its built-in 16384-32768.
    tolk_fs_param rtp-start-port 16384 keep
    tolk_fs_param rtp-end-port "$tolk_fs_end" set
    echo "  - Tolk: FreeSWITCH rtp-end-port=$tolk_fs_end (UDP 24512-24575 kept for Tolk)"
else
    echo "  - Tolk: $tolk_fs_conf or xmlstarlet missing: FreeSWITCH's RTP range left as it is" >&2
fi
# <<< tolk
