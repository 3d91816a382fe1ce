#!/bin/bash
# bench/mkdeps.sh DIR: a deps/ folder for a device machine without brisk's Debian packages
# (it has no network): the five libraries' headers, pkg-config files and shared objects with
# their own dependencies (all but glibc's), copied from this machine. cuda_run.sh points
# pkg-config and LD_LIBRARY_PATH at it (the .pc prefix is rewritten there).
set -eu
d=${1:?usage: mkdeps.sh DIR}
mkdir -p $d/include $d/lib/pkgconfig
A=/usr/lib/x86_64-linux-gnu
for p in libcjson libpcre2-8 libutf8proc libcurl libmicrohttpd; do
  cp $A/pkgconfig/$p.pc $d/lib/pkgconfig/
  grep -q "^prefix=" $d/lib/pkgconfig/$p.pc || sed -i "1i prefix=/deps" $d/lib/pkgconfig/$p.pc
  sed -i -e "s|^prefix=.*|prefix=/deps|" -e "s|^libdir=.*|libdir=\${prefix}/lib|" \
    -e "s|^includedir=.*|includedir=\${prefix}/include|" -e "/^Requires.private/d" \
    $d/lib/pkgconfig/$p.pc
done
cp -r /usr/include/cjson /usr/include/x86_64-linux-gnu/curl $d/include/
cp /usr/include/pcre2.h /usr/include/utf8proc.h /usr/include/microhttpd.h $d/include/
for so in libcjson.so libpcre2-8.so libutf8proc.so libcurl.so libmicrohttpd.so; do
  cp -L $A/$so $d/lib/$so
  for dep in $(ldd $A/$so | awk '/=> \//{print $3}'); do
    case $(basename $dep) in libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libresolv.so*) continue;; esac
    cp -L $dep $d/lib/
  done
  # the soname link the binary records
  sn=$(objdump -p $A/$so | awk '/SONAME/{print $2}'); cp -L $A/$so $d/lib/$sn
done
du -sh $d
