package rs

// Sysctl keys are paths below /proc/sys, not dotted names: interface names
// may contain dots (eth0.100). internal/netns reads and writes them.

func confKey(dev, name string) string {
	return "net/ipv4/conf/" + dev + "/" + name
}
